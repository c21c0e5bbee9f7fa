import { randomBytes } from 'node:crypto';
import type { TaskStatus } from '../../shared/protocol';
import type { TaskInfo, TaskSpec } from '../../shared/rpc';
import type { Placement } from './scheduler';
import type { PreparedWorkspace } from './sync/preparedWorkspace';
import { assertTransition, isFinal } from './taskState';

/** A task as the dispatcher keeps it: the public info plus what placing it needs. */
export interface TaskRecord {
  info: TaskInfo;
  spec: TaskSpec;
  /** The environment sent to the agent (spec env plus shard variables). */
  env: Record<string, string>;
  where: Placement;
  /** The link (agent address) running it, while running. */
  link: string | null;
  retriesLeft: number;
  lostRetriesLeft: number;
  cancelRequested: boolean;
  /** Whether the agent was sent `run` for the current attempt (it may still be syncing). */
  runSent: boolean;
  /** The workspace the task runs in, synced to its agent first. */
  workspace: PreparedWorkspace | undefined;
  readonly final: boolean;
}

/** All tasks this dispatcher knows, with their state transitions checked. */
export class TaskTable {
  private readonly records = new Map<string, TaskRecord>();

  get(id: string): TaskRecord | undefined {
    return this.records.get(id);
  }

  list(): TaskInfo[] {
    return [...this.records.values()].map((r) => ({ ...r.info }));
  }

  runningOn(link: string): TaskRecord[] {
    return [...this.records.values()].filter((r) => r.link === link && r.info.status === 'running');
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
        },
        spec,
        env,
        where: p.where,
        link: null,
        retriesLeft: spec.retries ?? 0,
        lostRetriesLeft: spec.lostRetries ?? 1,
        cancelRequested: false,
        runSent: false,
        workspace,
        get final() {
          return isFinal(this.info.status);
        },
      };
      this.records.set(id, record);
      return record;
    });
  }

  /** Moves a task to a new status, stamping times and attempts. Throws on an illegal move. */
  transition(id: string, to: TaskStatus): TaskRecord {
    const record = this.records.get(id);
    if (!record) throw new Error(`unknown task ${id}`);
    assertTransition(id, record.info.status, to);
    const info = record.info;
    info.status = to;
    if (to === 'running') {
      info.attempts++;
      info.startedAt = Date.now();
      info.endedAt = null;
      info.exitCode = null;
      info.signal = null;
      info.durationMs = null;
    } else if (isFinal(to)) {
      info.endedAt = Date.now();
      if (info.durationMs === null && info.startedAt !== null)
        info.durationMs = info.endedAt - info.startedAt;
      record.link = null;
    }
    return record;
  }
}
