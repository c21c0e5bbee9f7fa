import { randomBytes } from 'node:crypto';
import type { TaskInfo, TaskSpec } from '../../shared/rpc';
import type { AttemptRef, TaskPhase } from '../../shared/taskLifecycle';
import { assertMove, attemptOf, isFinalPhase, statusOfPhase } from '../../shared/taskLifecycle';
import type { Placement } from './scheduler';
import type { PreparedWorkspace } from './sync/preparedWorkspace';

/** A task as the dispatcher keeps it: its phase, the public info derived from it, and what placing it needs. */
export interface TaskRecord {
  info: TaskInfo;
  phase: TaskPhase;
  spec: TaskSpec;
  /** The environment sent to the agent (spec env plus shard variables). */
  env: Record<string, string>;
  where: Placement;
  retriesLeft: number;
  lostRetriesLeft: number;
  cancelRequested: boolean;
  /** The workspace the task runs in, synced to its agent first. */
  workspace: PreparedWorkspace | undefined;
  /** Attempts placed so far (each gets its own wire id). */
  placements: number;
  /** The last output seq seen of the current attempt (-1: none), so nothing is shown twice. */
  lastSeq: number;
  /** Timers of a detached attempt (lost-after, then the agent's grace). */
  timers: NodeJS.Timeout[];
}

/** All tasks this dispatcher knows; every phase change goes through `move`, checked. */
export class TaskTable {
  private readonly records = new Map<string, TaskRecord>();
  /** Wire id of each live attempt → task id. */
  private readonly byWire = new Map<string, string>();

  get(id: string): TaskRecord | undefined {
    return this.records.get(id);
  }

  /** The task whose current attempt has this wire id on this agent. */
  byAttempt(agent: string, wireId: string): TaskRecord | undefined {
    const id = this.byWire.get(wireId);
    const record = id === undefined ? undefined : this.records.get(id);
    const attempt = record ? attemptOf(record.phase) : null;
    return attempt && attempt.agent === agent && attempt.wireId === wireId ? record : undefined;
  }

  list(): TaskInfo[] {
    return [...this.records.values()].map((r) => ({ ...r.info }));
  }

  all(): IterableIterator<TaskRecord> {
    return this.records.values();
  }

  /** Tasks whose current attempt is with this agent. */
  onAgent(agent: string): TaskRecord[] {
    return [...this.records.values()].filter((r) => attemptOf(r.phase)?.agent === agent);
  }

  create(
    spec: TaskSpec,
    placements: ReadonlyArray<{ where: Placement; shard: number | null; agent: string | null }>,
    shardCount: number,
    workspace?: PreparedWorkspace,
  ): TaskRecord[] {
    const group = randomBytes(4).toString('hex');
    const now = Date.now();
    return placements.map((p, i) => {
      const id = placements.length > 1 ? `${group}-${i}` : group;
      const env = { ...spec.env };
      if (p.shard !== null) {
        env.OCTASK_SHARD_INDEX = String(p.shard);
        env.OCTASK_SHARD_COUNT = String(shardCount);
      }
      const record: TaskRecord = {
        info: {
          id,
          group,
          command: spec.command,
          status: 'pending',
          agent: p.agent,
          shard: p.shard,
          shardCount: p.shard === null ? 1 : shardCount,
          exitCode: null,
          signal: null,
          attempts: 0,
          queuedAt: now,
          startedAt: null,
          endedAt: null,
          durationMs: null,
          agentRoot: null,
          error: null,
          phase: 'queued',
          ahead: null,
          previousAgent: null,
          retryReason: null,
        },
        phase: { phase: 'queued', since: now, reason: null },
        spec,
        env,
        where: p.where,
        retriesLeft: spec.retries ?? 0,
        lostRetriesLeft: spec.lostRetries ?? 1,
        cancelRequested: false,
        workspace,
        placements: 0,
        lastSeq: -1,
        timers: [],
      };
      this.records.set(id, record);
      return record;
    });
  }

  /**
   * Takes back a task a previous run of this dispatcher journaled, in the
   * phase it is restored to (queued, detached, or final as it was).
   */
  restore(
    info: TaskInfo,
    spec: TaskSpec,
    where: Placement,
    phase: TaskPhase,
    workspace: PreparedWorkspace | undefined,
    lastSeq: number,
  ): TaskRecord {
    const attempt = attemptOf(phase);
    const record: TaskRecord = {
      info: { ...info, status: statusOfPhase(phase), phase: phase.phase },
      phase,
      spec,
      env: restoredEnv(spec, info),
      where,
      retriesLeft: spec.retries ?? 0,
      lostRetriesLeft: Math.max(0, (spec.lostRetries ?? 1) - Math.max(0, info.attempts - 1)),
      cancelRequested: false,
      workspace,
      placements: info.attempts,
      lastSeq,
      timers: [],
    };
    this.records.set(info.id, record);
    if (attempt) this.byWire.set(attempt.wireId, info.id);
    return record;
  }

  /** The attempt a placement starts: a new wire id, so an abandoned attempt's frames are never taken for this one's. */
  newAttempt(record: TaskRecord, agent: string, agentName: string): AttemptRef {
    record.placements++;
    record.info.attempts = record.placements;
    const wireId =
      record.placements === 1 ? record.info.id : `${record.info.id}.r${record.placements}`;
    this.byWire.set(wireId, record.info.id);
    return { agent, agentName, wireId, attempt: record.placements };
  }

  /**
   * Moves a task to its next phase and brings its public info in line.
   * Throws on a move the lifecycle does not have.
   */
  move(id: string, next: TaskPhase): TaskRecord {
    const record = this.records.get(id);
    if (!record) throw new Error(`unknown task ${id}`);
    const from = record.phase.phase;
    assertMove(id, from, next.phase);
    const before = attemptOf(record.phase);
    const after = attemptOf(next);
    if (before && before.wireId !== after?.wireId) {
      this.byWire.delete(before.wireId);
      record.lastSeq = -1;
    }
    for (const t of record.timers) clearTimeout(t);
    record.timers = [];
    record.phase = next;
    const info = record.info;
    info.status = statusOfPhase(next);
    info.phase = next.phase;
    info.ahead = next.phase === 'waiting' && next.ahead >= 0 ? next.ahead : null;
    if (after) {
      // A new placement after an earlier one: say where the task ran before.
      if (before === null && record.placements > 1 && info.agent !== null) {
        info.previousAgent = info.agent;
      }
      info.agent = after.agentName;
    }
    if (next.phase === 'queued' && next.reason !== null) info.retryReason = next.reason;
    if (next.phase === 'running' && from !== 'detached') {
      info.startedAt = next.startedAt;
      info.endedAt = null;
      info.exitCode = null;
      info.signal = null;
      info.durationMs = null;
    }
    if (isFinalPhase(next)) {
      info.endedAt = next.endedAt;
      if (info.durationMs === null && info.startedAt !== null)
        info.durationMs = info.endedAt - info.startedAt;
    }
    return record;
  }
}

function restoredEnv(spec: TaskSpec, info: TaskInfo): Record<string, string> {
  const env = { ...spec.env };
  if (info.shard !== null) {
    env.OCTASK_SHARD_INDEX = String(info.shard);
    env.OCTASK_SHARD_COUNT = String(info.shardCount);
  }
  return env;
}
