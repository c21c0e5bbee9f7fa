// Starts a built octask-agent as a child process for the benchmark. The same
// logic as test/helpers/agentProcess.ts, but the agent's path is found from
// the bench bundle's place (dist/) and extra node flags can be passed.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

/** dist/octask-agent.js next to dist/bench.js; or, when run from out/bench/, the built one in dist/. */
export function findAgentBin(): string {
  const candidates = [
    resolve(__dirname, 'octask-agent.js'),
    resolve(__dirname, '../../dist/octask-agent.js'),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found)
    throw new Error(
      `octask-agent is not built (looked for ${candidates.join(', ')}); run "node esbuild.mjs" first`,
    );
  return found;
}

export interface BenchAgent {
  proc: ChildProcess;
  port: number;
  address: string;
  /** Log records that were not per-task noise (kept for error messages). */
  notable: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

export interface BenchAgentOptions {
  keyFile: string;
  maxJobs: number;
  /** Flags for node itself, before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Extra octask-agent flags. */
  args?: string[];
}

/** Starts the agent on a free loopback port; resolves once it logs "listening". */
export function startBenchAgent(options: BenchAgentOptions): Promise<BenchAgent> {
  const workdir = mkdtempSync(join(tmpdir(), 'octask-bench-agent-'));
  // prettier-ignore
  const args = [
    ...(options.nodeArgs ?? []),
    findAgentBin(),
    '--name', 'bench',
    '--bind', '127.0.0.1',
    '--port', '0',
    '--no-mdns',
    '--key-file', options.keyFile,
    '--workdir', workdir,
    '--max-jobs', String(options.maxJobs),
    '--kill-grace', '1',
    '--log-level', 'info',
    ...(options.args ?? []),
  ];
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, OCTASK_PRETTY: '' },
  });
  const notable: Array<Record<string, unknown>> = [];
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  return new Promise((resolvePromise, reject) => {
    // The agent logs a line per task; read them all (a full pipe would stall it), keep the rare ones.
    const lines = createInterface({ input: proc.stderr! });
    const timer = setTimeout(
      () => reject(new Error('octask-agent did not start within 15 s')),
      15_000,
    );
    lines.on('line', (line) => {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        notable.push({ text: line });
        return;
      }
      if (record.msg === 'task audit') return;
      if (notable.length < 200) notable.push(record);
      if (record.msg === 'listening') {
        clearTimeout(timer);
        const port = record.port as number;
        resolvePromise({
          proc,
          port,
          address: `127.0.0.1:${port}`,
          notable,
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
      rmSync(workdir, { recursive: true, force: true });
      reject(
        new Error(`octask-agent exited with ${code} before listening: ${JSON.stringify(notable)}`),
      );
    });
  });
}
