import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { listPids, PROC_ROOT, readEnviron } from './procfs';

/**
 * Every process a task starts inherits this variable from the task's
 * environment, including those that leave its process group with setsid, so
 * the agent can find them all by scanning /proc. A process that clears its
 * environment before it execs is not found (docs/ARCHITECTURE.md lists what
 * still escapes).
 */
export const TASK_MARKER_VAR = 'OCTASK_TASK_MARKER';

const MARKER = /^[0-9a-f]{32}$/;

/** A fresh marker: 128 random bits in hex, so no other task or program carries it by chance. */
export function newMarker(): string {
  return randomBytes(16).toString('hex');
}

export function isMarker(value: unknown): value is string {
  return typeof value === 'string' && MARKER.test(value);
}

/** Whether a NUL-separated environment holds exactly `VAR=marker` as one of its entries. */
export function environHasMarker(environ: Buffer, marker: string): boolean {
  const entry = Buffer.from(`${TASK_MARKER_VAR}=${marker}`, 'latin1');
  for (let at = environ.indexOf(entry); at >= 0; at = environ.indexOf(entry, at + 1)) {
    const end = at + entry.length;
    if ((at === 0 || environ[at - 1] === 0) && (end === environ.length || environ[end] === 0)) {
      return true;
    }
  }
  return false;
}

/**
 * Pids of the processes (of any uid whose environment we may read) started
 * with this marker, this process excepted. Without /proc (macOS, Windows)
 * there is nothing to scan and the answer is []; the process group is then
 * all that ends a task.
 */
export function findMarked(marker: string, root = PROC_ROOT, since?: number): number[] {
  // A malformed marker (say, empty) must never match every process.
  if (!isMarker(marker)) throw new Error(`not a task marker: ${JSON.stringify(marker)}`);
  const found: number[] = [];
  // What a task started was forked after its leader, so has a higher pid unless
  // pids wrapped since: reading only those keeps a task's end cheap on a busy machine.
  const floor = since !== undefined && !pidsWrappedSince(since, root) ? since : 0;
  for (const pid of listPids(root)) {
    if (pid === process.pid || pid < floor) continue;
    const environ = readEnviron(pid, root);
    if (environ && environHasMarker(environ, marker)) found.push(pid);
  }
  return found;
}

/**
 * Whether the kernel's pid counter went past its maximum and started again
 * since `pid` was handed out (so a newer process may have a lower pid). When
 * it cannot tell, it says yes: the caller then scans everything.
 */
function pidsWrappedSince(pid: number, root: string): boolean {
  try {
    const last = Number(readFileSync(`${root}/sys/kernel/ns_last_pid`, 'latin1').trim());
    return !Number.isSafeInteger(last) || last < pid;
  } catch {
    return true;
  }
}

/**
 * Signals every process carrying the marker; returns how many were signalled.
 * `since`: the task's leader pid, to read only processes started after it.
 */
export function killMarked(
  marker: string,
  signal: NodeJS.Signals,
  root = PROC_ROOT,
  since?: number,
): number {
  let signalled = 0;
  for (const pid of findMarked(marker, root, since)) {
    try {
      process.kill(pid, signal);
      signalled++;
    } catch {
      // ESRCH: it ended between the scan and the signal.
    }
  }
  return signalled;
}
