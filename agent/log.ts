import type { LogFields, Logger, LogLevel } from '../shared/logger';
import { LOG_LEVELS } from '../shared/logger';

export interface StreamLoggerOptions {
  level: LogLevel;
  /** Human-readable lines instead of one JSON object a line. */
  pretty: boolean;
  /** Defaults to process.stderr: stdout stays free for data. */
  write?: (line: string) => void;
  /** Fields added to every record (e.g. the program's name). */
  base?: LogFields;
}

/** A Logger that writes one JSON object a line (or a readable line with pretty). */
export function createStreamLogger(options: StreamLoggerOptions): Logger {
  const min = LOG_LEVELS.indexOf(options.level);
  const write = options.write ?? stderrWriter();
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LOG_LEVELS.indexOf(level) < min) return;
    const time = new Date().toISOString();
    if (options.pretty) {
      const extra = fields ? Object.entries(fields).map(([k, v]) => `${k}=${formatValue(v)}`) : [];
      write(
        `${time.slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${msg}${extra.length ? ' ' + extra.join(' ') : ''}\n`,
      );
    } else {
      write(JSON.stringify({ time, level, msg, ...options.base, ...fields }, jsonSafe) + '\n');
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

/** The subset of a writable stream the writer needs; a fake in tests. */
export interface BreakableStream {
  readonly destroyed: boolean;
  write(text: string): boolean;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

let processStderr: ((text: string) => void) | undefined;

/**
 * Writes to a stream until it breaks, then drops everything. The agent's
 * stderr may be an ssh session or a terminal that is gone (EPIPE); losing
 * log lines is better than losing the agent and its running tasks. Without
 * an 'error' listener, a broken pipe would be an uncaught exception.
 */
export function stderrWriter(stream?: BreakableStream): (text: string) => void {
  if (!stream && processStderr) return processStderr;
  const target = stream ?? process.stderr;
  let broken = false;
  target.on('error', () => {
    broken = true;
  });
  const write = (text: string): void => {
    if (broken || target.destroyed) return;
    try {
      target.write(text);
    } catch {
      broken = true;
    }
  };
  if (!stream) processStderr = write;
  return write;
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /\s/.test(v) ? JSON.stringify(v) : v;
  return JSON.stringify(v, jsonSafe);
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (value instanceof Error)
    return { message: value.message, code: (value as { code?: unknown }).code };
  if (typeof value === 'bigint') return value.toString();
  return value;
}
