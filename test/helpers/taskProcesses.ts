import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { readStat } from '../../agent/procfs';

/** Whether the process exists and is not a zombie (pid 1 may not reap orphans on a test box). */
export function alive(pid: number): boolean {
  const stat = readStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** Polls until `check` holds; fails naming `what` after `ms`. */
export async function waitFor(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Signals the process has a handler for (SigCgt in /proc/PID/status). */
export function caughtSignals(pid: number): number[] {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return [];
  }
  const hex = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0';
  const mask = BigInt(`0x${hex}`);
  const caught: number[] = [];
  for (let n = 1; n <= 64; n++) if (mask & (1n << BigInt(n - 1))) caught.push(n);
  return caught;
}

/**
 * Runs a small Node program (source text) standing in for an agent, with
 * `args` as its process.argv[1..]; resolves with the first line it prints,
 * parsed as JSON, once it prints it.
 */
export async function startStandIn<T>(
  source: string,
  args: string[],
): Promise<{ proc: ChildProcess; ready: T; exited: Promise<void> }> {
  const proc = spawn(process.execPath, ['-e', source, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    proc.once('exit', (code, signal) =>
      reject(new Error(`stand-in exited (${code ?? signal}) before it was ready`)),
    );
  });
  lines.close();
  return { proc, ready: JSON.parse(first) as T, exited };
}
