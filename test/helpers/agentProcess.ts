import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { writeNewKey } from '../../agent/keyFile';
import type { ClusterKey } from '../../shared/clusterKey';

/** The built programs the tests drive as child processes (npm test builds them first). */
export const AGENT_BIN = resolve(__dirname, '../../../dist/octask-agent.js');
export const CLI_BIN = resolve(__dirname, '../../../dist/octask.js');

export interface StartedAgent {
  proc: ChildProcess;
  port: number;
  name: string;
  address: string;
  workdir: string;
  /** Every log record the agent wrote to stderr so far. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the exit code once the process is gone. */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after 5 s; resolves when gone. */
  stop(): Promise<void>;
}

export interface StartAgentOptions {
  keyFile: string;
  name?: string;
  maxJobs?: number;
  bind?: string;
  args?: string[];
  /** Prefix the command (e.g. `ip netns exec NS`) */
  wrap?: string[];
  env?: NodeJS.ProcessEnv;
}

/** A temporary folder removed by `cleanup()`. */
export function tempDir(prefix = 'octask-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export function newKeyFile(dir: string, name = 'key'): { path: string; key: ClusterKey } {
  const path = join(dir, name);
  return { path, key: writeNewKey(path) };
}

/** Starts `octask-agent` on port 0 and resolves once it logs that it listens. */
export function startAgent(options: StartAgentOptions): Promise<StartedAgent> {
  const name = options.name ?? `agent${Math.floor(Math.random() * 1e6)}`;
  const workdir = mkdtempSync(join(tmpdir(), `octask-${name}-`));
  const args = [
    AGENT_BIN,
    '--name',
    name,
    '--bind',
    options.bind ?? '127.0.0.1',
    '--port',
    '0',
    '--no-mdns',
    '--key-file',
    options.keyFile,
    '--workdir',
    workdir,
    '--max-jobs',
    String(options.maxJobs ?? 2),
    '--kill-grace',
    '1',
    // The helper reads the JSON "listening" line; a developer's OCTASK_PRETTY
    // or OCTASK_LOG_LEVEL must not change it.
    '--log-level',
    'info',
    ...(options.args ?? []),
  ];
  const [file, ...rest] = options.wrap
    ? [...options.wrap, process.execPath, ...args]
    : [process.execPath, ...args];
  const proc = spawn(file as string, rest, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, OCTASK_PRETTY: '', ...options.env },
  });
  const logs: Array<Record<string, unknown>> = [];
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  return new Promise((resolvePromise, reject) => {
    const lines = createInterface({ input: proc.stderr! });
    const timer = setTimeout(
      () => reject(new Error(`agent ${name} did not start within 15 s`)),
      15_000,
    );
    lines.on('line', (line) => {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(record);
      if (record.msg === 'listening') {
        clearTimeout(timer);
        const port = record.port as number;
        const host = options.bind ?? '127.0.0.1';
        resolvePromise({
          proc,
          port,
          name,
          address: `${host}:${port}`,
          workdir,
          logs,
          exited,
          stop: async () => {
            if (proc.exitCode === null && proc.signalCode === null) {
              proc.kill('SIGTERM');
              const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
              await exited;
              clearTimeout(killer);
            }
            rmSync(workdir, { recursive: true, force: true });
          },
        });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(
        new Error(`agent ${name} exited with ${code} before listening: ${JSON.stringify(logs)}`),
      );
    });
  });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the `octask` CLI to completion. */
export function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; wrap?: string[]; onSpawn?: (p: ChildProcess) => void } = {},
): Promise<CliResult> {
  const [file, ...rest] = options.wrap
    ? [...options.wrap, process.execPath, CLI_BIN, ...args]
    : [process.execPath, CLI_BIN, ...args];
  const proc = spawn(file as string, rest, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  options.onSpawn?.(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((res) => proc.once('close', (code) => res({ code, stdout, stderr })));
}
