import { execFileSync } from 'node:child_process';

/** A number unlikely to appear in any other process's arguments, to find a test's processes by. */
export function marker(): number {
  return 900_000 + Math.floor(Math.random() * 99_999);
}

/** Pids of live processes whose command line contains `text`. */
export function processesMatching(text: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', text], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** Waits (bounded) until no process matches; returns what is still there. */
export async function waitUntilGone(text: string, ms = 5000): Promise<number[]> {
  const end = Date.now() + ms;
  let left = processesMatching(text);
  while (left.length > 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    left = processesMatching(text);
  }
  return left;
}

/** Waits (bounded) until some process matches. */
export async function waitUntilRunning(text: string, ms = 5000): Promise<number[]> {
  const end = Date.now() + ms;
  let found = processesMatching(text);
  while (found.length === 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 25));
    found = processesMatching(text);
  }
  return found;
}

/** The chain of parent pids above `pid`, nearest first. */
export function ancestors(pid: number): number[] {
  const chain: number[] = [];
  let current = pid;
  for (let i = 0; i < 32; i++) {
    let ppid: number;
    try {
      ppid = Number(
        execFileSync('ps', ['-o', 'ppid=', '-p', String(current)], { encoding: 'utf8' }).trim(),
      );
    } catch {
      break;
    }
    if (!ppid || ppid <= 1) break;
    chain.push(ppid);
    current = ppid;
  }
  return chain;
}
