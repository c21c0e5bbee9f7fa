// Starts a built octask-agent as a child process for the demo. Like
// test/helpers/agentProcess.ts and bench/agentProcess.ts, but the process is
// spawned at once (so an early Ctrl+C can still stop it) and readiness is a
// separate promise.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface DemoAgentOptions {
  /** dist/octask-agent.js */
  bin: string;
  name: string;
  keyFile: string;
  workdir: string;
  maxJobs: number;
}

/** How long an agent may take to log "listening". */
const START_TIMEOUT_MS = 10_000;
/** When stopping: the second SIGTERM (cancel running tasks), then SIGKILL. */
const CANCEL_AFTER_MS = 1_500;
const KILL_AFTER_MS = 4_000;
/** Log lines kept for error messages: the first few (a startup error) and the latest. */
const KEEP_FIRST = 8;
const KEEP_LAST = 24;

export class DemoAgent {
  readonly name: string;
  /** Resolves with the port once the agent logs "listening"; rejects if it exits or stalls first. */
  readonly ready: Promise<number>;
  /** Resolves once the process is gone. */
  readonly exited: Promise<void>;
  private readonly proc: ChildProcess;
  /** Log lines, raw, for error messages: the first ones, and the latest ones after those. */
  private readonly first: string[] = [];
  private readonly recent: string[] = [];
  private dropped = 0;
  private stopping: Promise<string | null> | undefined;

  constructor(options: DemoAgentOptions) {
    this.name = options.name;
    // prettier-ignore
    const args = [
      options.bin,
      '--name', options.name,
      '--bind', '127.0.0.1',
      '--port', '0',
      '--no-mdns',
      '--key-file', options.keyFile,
      '--workdir', options.workdir,
      '--max-jobs', String(options.maxJobs),
    ];
    this.proc = spawn(process.execPath, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: withoutOctaskVariables(process.env),
    });
    this.exited = new Promise((resolve) => {
      // 'exit' can come before the stderr pipe closes, and 'error' (spawn
      // failed) without 'exit'; either means the process is gone.
      this.proc.once('exit', () => resolve());
      this.proc.once('error', () => resolve());
    });
    this.ready = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `agent ${this.name} did not log "listening" within ${START_TIMEOUT_MS / 1000} s${this.tail()}`,
            ),
          ),
        START_TIMEOUT_MS,
      );
      this.proc.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`agent ${this.name} could not be started: ${err.message}`));
      });
      // Read every line, even after "listening": a full pipe would stall the agent.
      const stderr = this.proc.stderr;
      if (!stderr) throw new Error('agent stderr is not a pipe');
      createInterface({ input: stderr }).on('line', (line) => {
        this.keep(line);
        const record = parseRecord(line);
        if (record?.msg === 'listening' && typeof record.port === 'number') {
          clearTimeout(timer);
          resolve(record.port);
        }
      });
      // 'close' (not 'exit') so that the agent's last words are read first.
      this.proc.once('close', () => {
        clearTimeout(timer);
        // A no-op once resolved.
        reject(
          new Error(
            `agent ${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}) before listening${this.tail()}`,
          ),
        );
      });
    });
    // Callers may never await `ready` (e.g. interrupted early); don't let it crash the process.
    this.ready.catch(() => undefined);
  }

  private keep(line: string): void {
    if (this.first.length < KEEP_FIRST) {
      this.first.push(line);
      return;
    }
    this.recent.push(line);
    if (this.recent.length > KEEP_LAST) {
      this.recent.shift();
      this.dropped++;
    }
  }

  private lines(): string[] {
    return [
      ...this.first,
      ...(this.dropped > 0 ? [`(${this.dropped} lines left out)`] : []),
      ...this.recent,
    ];
  }

  /** The agent's log lines, indented, for an error message ('' if none). */
  tail(): string {
    const lines = this.lines();
    return lines.length === 0 ? '' : `; its log lines:\n${lines.map((l) => `    ${l}`).join('\n')}`;
  }

  /** Log lines at warn or error level so far (or unparsable ones). */
  problems(): string[] {
    return this.lines().filter((line) => {
      const record = parseRecord(line);
      return record === null || record.level === 'warn' || record.level === 'error';
    });
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /**
   * SIGTERM (the agent drains: lets running tasks finish), SIGTERM again after
   * a moment if it still runs (it cancels them), SIGKILL after a few seconds.
   * Resolves when the process is gone, with null if it left on the first
   * SIGTERM with status 0, else with what happened instead.
   */
  stop(): Promise<string | null> {
    this.stopping ??= (async () => {
      if (this.proc.pid === undefined) return 'was never started';
      if (!this.running) return `had already exited (${this.exitDescription()})`;
      let sent = 'SIGTERM';
      this.proc.kill('SIGTERM');
      const timers = [
        setTimeout(() => {
          sent = 'a second SIGTERM';
          this.proc.kill('SIGTERM');
        }, CANCEL_AFTER_MS),
        setTimeout(() => {
          sent = 'SIGKILL';
          this.proc.kill('SIGKILL');
        }, KILL_AFTER_MS),
      ];
      await this.exited;
      timers.forEach(clearTimeout);
      return sent === 'SIGTERM' && this.proc.exitCode === 0
        ? null
        : `stopped (${this.exitDescription()}) only after ${sent}`;
    })();
    return this.stopping;
  }

  private exitDescription(): string {
    return this.proc.signalCode ?? `status ${this.proc.exitCode}`;
  }

  /** SIGKILL now (a second Ctrl+C). */
  kill(): void {
    if (this.running) this.proc.kill('SIGKILL');
  }
}

function parseRecord(line: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/**
 * The environment without OCTASK_* variables: the agent reads its settings
 * from them (OCTASK_PRETTY, OCTASK_LOG_LEVEL, OCTASK_ALLOW, ...), and the demo
 * must behave the same whatever the user's shell has set.
 */
export function withoutOctaskVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('OCTASK_')));
}
