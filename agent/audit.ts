import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../shared/logger';

/** One line per task the agent was asked to run, whatever became of it. */
export interface AuditEntry {
  peer: string;
  dispatcher: string;
  task: string;
  command: string;
  outcome: string;
  exitCode?: number | null;
  signal?: string | null;
  durationMs?: number;
  reason?: string;
}

export type AuditLog = (entry: AuditEntry) => void;

/**
 * Longest command or reason written whole: a key holder could otherwise
 * make every refused multi-MiB command a multi-MiB audit line.
 */
export const MAX_AUDIT_FIELD = 4096;

/** Cuts a long field, saying how long it was, so the line stays a readable record. */
function cut(text: string): string {
  if (text.length <= MAX_AUDIT_FIELD) return text;
  return `${text.slice(0, MAX_AUDIT_FIELD)}… (${text.length} characters in all)`;
}

/** Appends JSON lines to `path` (and to the log at debug level). */
export function createAuditLog(
  path: string | undefined,
  logger: Logger,
): { write: AuditLog; close(): Promise<void> } {
  const stream = path ? openAppend(path) : undefined;
  stream?.on('error', (err) => logger.error('audit log write failed', { path, err }));
  return {
    write(entry) {
      const record = {
        time: new Date().toISOString(),
        ...entry,
        command: cut(entry.command),
        ...(entry.reason === undefined ? {} : { reason: cut(entry.reason) }),
      };
      // The file is the record; the log repeats it only when asked for detail.
      logger.debug('task audit', record);
      stream?.write(JSON.stringify(record) + '\n');
    },
    close: () => new Promise((resolve) => (stream ? stream.end(resolve) : resolve())),
  };
}

function openAppend(path: string) {
  mkdirSync(dirname(path), { recursive: true });
  return createWriteStream(path, { flags: 'a', mode: 0o600 });
}
