import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { writeNewKey } from '../../agent/keyFile';
import type { ClusterKey } from '../../shared/clusterKey';

/** The built programs, found from wherever this module runs (out/test/helpers or dist/). */
export const AGENT_BIN = builtProgram('octask-agent.js');
export const CLI_BIN = builtProgram('octask.js');

function builtProgram(file: string): string {
  const candidates = [resolve(__dirname, '../../../dist', file), resolve(__dirname, file)];
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

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
  /** Advertise by mDNS (off by default: loopback has no multicast here). */
  mdns?: boolean;
  args?: string[];
  /** Use this workdir (kept after stop) instead of a fresh one. */
  workdir?: string;
  /** Flags for node itself, before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Prefix the command (e.g. `ip netns exec NS`) */
  wrap?: string[];
  /** The Node that runs the agent; default: the one running the tests. */
  execPath?: string;
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

/** Environment with every OCTASK_* variable blanked, so the caller's shell cannot steer an agent. */
export function cleanOctaskEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of Object.keys(process.env)) if (name.startsWith('OCTASK_')) env[name] = '';
  return env;
}

/** Starts `octask-agent` on port 0 and resolves once it logs that it listens. */
export function startAgent(options: StartAgentOptions): Promise<StartedAgent> {
  if (!existsSync(AGENT_BIN)) throw new Error(`${AGENT_BIN} is not built; run "node esbuild.mjs"`);
  const name = options.name ?? `agent${Math.floor(Math.random() * 1e6)}`;
  const host = options.bind ?? '127.0.0.1';
  // A given workdir outlives this agent (a restart keeps its id and records); a made one does not.
  const workdir = options.workdir ?? mkdtempSync(join(tmpdir(), `octask-${name}-`));
  // prettier-ignore
  const args = [
    ...(options.nodeArgs ?? []),
    AGENT_BIN,
    '--name', name,
    '--bind', host,
    '--port', '0',
    ...(options.mdns ? [] : ['--no-mdns']),
    '--key-file', options.keyFile,
    '--workdir', workdir,
    '--max-jobs', String(options.maxJobs ?? 2),
    '--kill-grace', '1',
    // The "listening" line is read as JSON, whatever the caller's environment says.
    '--log-level', 'info',
    ...(options.args ?? []),
  ];
  const [file, ...rest] = [...(options.wrap ?? []), options.execPath ?? process.execPath, ...args];
  const proc = spawn(file as string, rest, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...cleanOctaskEnv(), ...options.env },
  });
  const logs: Array<Record<string, unknown>> = [];
  const rawLines: string[] = [];
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  // 'close' comes after the last stderr line, so a failure can quote it.
  const closed = new Promise<number | null>((res) => proc.once('close', (code) => res(code)));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    if (!options.workdir) rmSync(workdir, { recursive: true, force: true });
  };
  return new Promise((resolvePromise, reject) => {
    let settled = false;
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop().then(() =>
        reject(new Error(`${message}; its stderr:\n${rawLines.slice(-20).join('\n')}`)),
      );
    };
    const timer = setTimeout(() => fail(`agent ${name} did not start within 15 s`), 15_000);
    proc.once('error', (err) => fail(`cannot start agent ${name}: ${err.message}`));
    void closed.then((code) => fail(`agent ${name} exited with ${String(code)} before listening`));
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      if (rawLines.length < 200) rawLines.push(line);
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(record);
      if (record.msg !== 'listening' || settled) return;
      settled = true;
      clearTimeout(timer);
      const port = record.port as number;
      resolvePromise({ proc, port, name, address: `${host}:${port}`, workdir, logs, exited, stop });
    });
  });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `octask run --agent ADDRESS --key-file KEY --no-mdns ARGS...`: one agent, no discovery. */
export function runOn(
  address: string,
  keyFile: string,
  args: string[],
  options: Parameters<typeof runCli>[1] = {},
): Promise<CliResult> {
  return runCli(['run', '--agent', address, '--key-file', keyFile, '--no-mdns', ...args], options);
}

/**
 * Runs the `octask` CLI to completion. Without a workspace watcher unless
 * the test asks for one (OCTASK_NO_WATCHER=0): each run's fresh cache
 * folder would otherwise leave a watcher behind.
 */
export function runCli(
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    wrap?: string[];
    onSpawn?: (p: ChildProcess) => void;
    /** Where the CLI runs; by default a folder outside any git tree, so nothing is synced. */
    cwd?: string;
  } = {},
): Promise<CliResult> {
  const [file, ...rest] = options.wrap
    ? [...options.wrap, process.execPath, CLI_BIN, ...args]
    : [process.execPath, CLI_BIN, ...args];
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  env.OCTASK_NO_WATCHER ||= '1';
  const proc = spawn(file as string, rest, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
    cwd: options.cwd ?? tmpdir(),
  });
  options.onSpawn?.(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((res) => proc.once('close', (code) => res({ code, stdout, stderr })));
}
