import { readdirSync, readFileSync } from 'node:fs';

/**
 * What the agent reads about other processes from /proc (Linux and Android).
 * Every read tolerates the process vanishing or being unreadable: the process
 * table changes under us, and another uid's files may be closed to us.
 */

/** The fields of /proc/PID/stat the agent needs. */
export interface ProcStat {
  pid: number;
  /** Process group id (field 5). */
  pgrp: number;
  /** Clock ticks since boot when the process started (field 22); with the pid, it names one process. */
  startTime: number;
  /** One letter (field 3); 'Z' for a zombie, which signals cannot end. */
  state: string;
}

export const PROC_ROOT = '/proc';

/** Whether this system has a /proc that lists processes (false on macOS and Windows). */
export function hasProcfs(root = PROC_ROOT): boolean {
  try {
    readFileSync(`${root}/self/stat`);
    return true;
  } catch {
    return false;
  }
}

/** The pids /proc lists now; [] without /proc. */
export function listPids(root = PROC_ROOT): number[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c >= 48 && c <= 57) pids.push(Number(name));
  }
  return pids;
}

/** Parses a /proc/PID/stat line; the command name may hold spaces and parentheses. */
export function parseStat(line: string): ProcStat | undefined {
  const open = line.indexOf(' (');
  const close = line.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const rest = line.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); field N is rest[N - 3].
  const pid = Number(line.slice(0, open));
  const pgrp = Number(rest[2]);
  const startTime = Number(rest[19]);
  if (!Number.isInteger(pid) || !Number.isInteger(pgrp) || !Number.isInteger(startTime)) {
    return undefined;
  }
  return { pid, pgrp, startTime, state: rest[0] ?? '?' };
}

/** The process's stat, or undefined when it is gone (or there is no /proc). */
export function readStat(pid: number, root = PROC_ROOT): ProcStat | undefined {
  try {
    return parseStat(readFileSync(`${root}/${pid}/stat`, 'latin1'));
  } catch {
    return undefined;
  }
}

/** The environment the process was started with (NUL-separated), or undefined if unreadable. */
export function readEnviron(pid: number, root = PROC_ROOT): Buffer | undefined {
  try {
    return readFileSync(`${root}/${pid}/environ`);
  } catch {
    return undefined; // ESRCH/ENOENT: gone; EACCES: another uid's, closed to us
  }
}

/** This boot's id, so that records from an earlier boot are never taken for live processes. */
export function bootId(root = PROC_ROOT): string | undefined {
  try {
    return readFileSync(`${root}/sys/kernel/random/boot_id`, 'latin1').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Pids whose process group is `pgid` (zombies left out: they are already dead). */
export function groupMembers(pgid: number, root = PROC_ROOT): number[] {
  const members: number[] = [];
  for (const pid of listPids(root)) {
    const stat = readStat(pid, root);
    if (stat && stat.pgrp === pgid && stat.state !== 'Z') members.push(pid);
  }
  return members;
}
