/**
 * CPU time (user + system) of processes, from Linux's /proc: the bench
 * shows how much work a sync took on both ends next to rsync's, since on a
 * small machine the wall time of two busy processes is bounded by it.
 * Elsewhere every reading is undefined and the rows say n/a.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout;
    const n = Number.parseInt(out ?? '', 10);
    // 100 on every Linux the bench is known to run on; getconf only confirms it.
    ticksPerSecond = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

/**
 * Milliseconds of CPU `pid` has used: its own (unless `childrenOnly`)
 * plus that of the children it has waited for, which is where a forking
 * server (rsync's daemon) and a spawned CLI show up. Undefined without /proc.
 */
export function cpuMs(pid: number | 'self', { childrenOnly = false } = {}): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after "(comm)", which may itself hold spaces: state is the first.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]));
  if (![utime, stime, cutime, cstime].every((x) => Number.isFinite(x))) return undefined;
  const ticks = (childrenOnly ? 0 : utime! + stime!) + cutime! + cstime!;
  return (ticks * 1000) / clockTicks();
}

/**
 * CPU milliseconds each of `pids` uses while `work` runs (undefined
 * without /proc), read `settleMs` after it: a forking server reaps the
 * child that did the work a moment after the client is done.
 */
export async function cpuDuring<T>(
  pids: ReadonlyArray<{ pid: number | 'self'; childrenOnly?: boolean }>,
  work: () => Promise<T>,
  settleMs = 0,
): Promise<{ result: T; cpu: Array<number | undefined> }> {
  const before = pids.map((p) => cpuMs(p.pid, p));
  const result = await work();
  if (settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));
  const cpu = pids.map((p, i) => {
    const was = before[i];
    const now = cpuMs(p.pid, p);
    return was === undefined || now === undefined ? undefined : now - was;
  });
  return { result, cpu };
}
