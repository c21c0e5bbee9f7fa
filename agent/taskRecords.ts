import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../shared/logger';
import { bootId, groupMembers, readEnviron, readStat } from './procfs';
import { environHasMarker, findMarked, isMarker } from './taskMarker';

/**
 * What the agent keeps on disk about each running task, so that the next
 * agent started on the same workdir ends what this one left running if it
 * dies: one file per task under `<workdir>/running/`, there from just after
 * the task starts until it ends.
 */
export interface TaskRecord {
  task: string;
  /** The dispatcher's id the task ran for. */
  owner: string;
  /** The task's leader; its process group has the same id. */
  pid: number;
  pgid: number;
  /** The leader's start time (/proc/PID/stat field 22); with `pid`, names that one process. */
  startTime: number | null;
  marker: string;
  /** ISO time. */
  startedAt: string;
  /** The agent that ran it, so a live agent's records are never taken for orphans. */
  agentPid: number;
  agentStartTime: number | null;
  /** Start times are counted from boot: they mean nothing in another boot. */
  bootId: string | null;
}

/** What reapOrphans found: a task the previous agent left, and how many processes it ended. */
export interface Orphan {
  task: string;
  owner: string;
  killed: number;
}

export interface ReapOptions {
  /** Time between TERM and KILL (default 1 s). */
  graceMs?: number;
}

const RUNNING = 'running';

function recordPath(workdir: string, owner: string, task: string): string {
  // Readable where it can be; the hash keeps names apart that sanitize alike, or
  // that two dispatchers share.
  const readable = task.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
  const hash = createHash('sha256').update(`${owner}\0${task}`).digest('hex').slice(0, 16);
  return join(workdir, RUNNING, `${readable}-${hash}.json`);
}

/**
 * Records a task that has just started. Written to a temporary name and
 * renamed, so a crash mid-write leaves either no record or a whole one. Not
 * fsynced: the records matter when the agent dies, not the machine, and a
 * power cut ends the tasks too.
 */
export function recordTask(
  workdir: string,
  task: { task: string; owner: string; pid: number; pgid: number; marker: string },
): TaskRecord {
  const self = readStat(process.pid);
  const record: TaskRecord = {
    ...task,
    startTime: readStat(task.pid)?.startTime ?? null,
    startedAt: new Date().toISOString(),
    agentPid: process.pid,
    agentStartTime: self?.startTime ?? null,
    bootId: bootId() ?? null,
  };
  const path = recordPath(workdir, task.owner, task.task);
  mkdirSync(join(workdir, RUNNING), { recursive: true });
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temp, JSON.stringify(record), { flag: 'wx', mode: 0o600 });
  renameSync(temp, path);
  return record;
}

/** The task ended: its record goes. */
export function removeTaskRecord(workdir: string, owner: string, task: string): void {
  rmSync(recordPath(workdir, owner, task), { force: true });
}

/**
 * Run once when the agent starts: ends what a previous agent on this workdir
 * left running, removes its records and returns those tasks (to report as
 * lost). A task's process group is ended only if it is provably the task's:
 * its leader is alive with the recorded start time, or, the leader gone, a
 * member still carries the task's marker; a reused pid is left alone.
 * Processes carrying the marker are ended wherever they are. Records of an
 * agent that is still running (another agent on the same workdir) are kept.
 */
export async function reapOrphans(
  workdir: string,
  logger: Logger,
  options: ReapOptions = {},
): Promise<Orphan[]> {
  const dir = join(workdir, RUNNING);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return []; // no folder: nothing was ever recorded
  }
  const orphans: Array<Orphan & { targets: Targets }> = [];
  for (const name of names) {
    const path = join(dir, name);
    if (name.endsWith('.tmp')) {
      rmSync(path, { force: true }); // a write cut short
      continue;
    }
    if (!name.endsWith('.json')) continue;
    const record = readRecord(path);
    if (!record) {
      logger.warn('unreadable task record removed', { path });
      rmSync(path, { force: true });
      continue;
    }
    if (agentAlive(record)) continue;
    const targets = orphanTargets(record);
    orphans.push({ task: record.task, owner: record.owner, killed: 0, targets });
    rmSync(path, { force: true });
  }
  for (const o of orphans) o.killed = signalTargets(o.targets, 'SIGTERM');
  const graceMs = options.graceMs ?? 1000;
  const deadline = Date.now() + graceMs;
  while (orphans.some((o) => anyLeft(o.targets)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const o of orphans) signalTargets(o.targets, 'SIGKILL');
  for (const o of orphans) {
    logger.warn('ended a task the previous agent left running', {
      task: o.task,
      owner: o.owner,
      killed: o.killed,
    });
  }
  return orphans.map(({ task, owner, killed }) => ({ task, owner, killed }));
}

interface Targets {
  /** The task's process group, when it is provably the task's. */
  pgid: number | undefined;
  marker: string | undefined;
}

function readRecord(path: string): TaskRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Partial<TaskRecord>;
  const pid = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 1;
  const timeOrNull = (v: unknown): boolean => v === null || Number.isInteger(v);
  if (typeof r.task !== 'string' || typeof r.owner !== 'string') return undefined;
  if (!pid(r.pid) || !pid(r.pgid) || !pid(r.agentPid)) return undefined;
  if (!timeOrNull(r.startTime) || !timeOrNull(r.agentStartTime)) return undefined;
  if (!isMarker(r.marker)) return undefined;
  return r as TaskRecord;
}

function sameBoot(record: TaskRecord): boolean {
  const now = bootId();
  return record.bootId === null || now === undefined || record.bootId === now;
}

function agentAlive(record: TaskRecord): boolean {
  if (record.agentPid === process.pid || !sameBoot(record)) return false;
  const stat = readStat(record.agentPid);
  return stat !== undefined && stat.state !== 'Z' && stat.startTime === record.agentStartTime;
}

function orphanTargets(record: TaskRecord): Targets {
  // In another boot, nothing running now can be the task's.
  if (!sameBoot(record)) return { pgid: undefined, marker: undefined };
  const leader = readStat(record.pid);
  let pgid: number | undefined;
  if (leader && leader.state !== 'Z') {
    // The leader's pid still names a process: the task's only if it started when the task did.
    if (leader.startTime === record.startTime) pgid = record.pgid;
  } else {
    const members = groupMembers(record.pgid);
    if (members.some((pid) => carries(pid, record.marker))) pgid = record.pgid;
  }
  return { pgid, marker: record.marker };
}

function carries(pid: number, marker: string): boolean {
  const environ = readEnviron(pid);
  return environ !== undefined && environHasMarker(environ, marker);
}

/** Signals the targets; returns how many distinct processes were reached. */
function signalTargets(t: Targets, signal: NodeJS.Signals): number {
  const pids = new Set<number>(t.pgid ? groupMembers(t.pgid) : []);
  if (t.pgid) {
    try {
      process.kill(-t.pgid, signal);
    } catch {
      // ESRCH: the group emptied meanwhile.
    }
  }
  if (t.marker) {
    for (const pid of findMarked(t.marker)) {
      try {
        process.kill(pid, signal);
        pids.add(pid);
      } catch {
        // ESRCH: it ended between the scan and the signal.
      }
    }
  }
  return pids.size;
}

function anyLeft(t: Targets): boolean {
  return (
    (t.pgid !== undefined && groupMembers(t.pgid).length > 0) ||
    (t.marker !== undefined && findMarked(t.marker).length > 0)
  );
}
