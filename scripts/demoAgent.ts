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
/** Time between SIGTERM and SIGKILL when stopping. */
const STOP_GRACE_MS = 3_000;
/** Log lines kept for error messages. */
const KEEP_LINES = 40;

export class DemoAgent {
  readonly name: string;
  /** Resolves with the port once the agent logs "listening"; rejects if it exits or stalls first. */
  readonly ready: Promise<number>;
  /** Resolves once the process is gone. */
  readonly exited: Promise<void>;
  private readonly proc: ChildProcess;
  /** The last log lines, raw, for error messages. */
  private readonly recent: string[] = [];
  private stopping: Promise<void> | undefined;

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
    this.proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
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
        this.recent.push(line);
        if (this.recent.length > KEEP_LINES) this.recent.shift();
        const record = parseRecord(line);
        if (record?.msg === 'listening' && typeof record.port === 'number') {
          clearTimeout(timer);
          resolve(record.port);
        }
      });
      void this.exited.then(() => {
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

  /** The agent's last log lines, indented, for an error message ('' if none). */
  tail(): string {
    return this.recent.length === 0
      ? ''
      : `; its last log lines:\n${this.recent.map((l) => `    ${l}`).join('\n')}`;
  }

  /** Log lines at warn or error level so far (or unparsable ones). */
  problems(): string[] {
    return this.recent.filter((line) => {
      const record = parseRecord(line);
      return record === null || record.level === 'warn' || record.level === 'error';
    });
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after a few seconds; resolves when the process is gone. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (!this.running || this.proc.pid === undefined) return;
      this.proc.kill('SIGTERM');
      const killer = setTimeout(() => this.proc.kill('SIGKILL'), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(killer);
    })();
    return this.stopping;
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
