import type { TaskInfo } from '../../shared/rpc';

/** A TaskInfo for unit tests: a running first attempt of command `x` on agent `a`, with `over` applied. */
export function taskInfo(over: Partial<TaskInfo> = {}): TaskInfo {
  return {
    id: 't',
    group: 'g',
    command: 'x',
    status: 'running',
    agent: 'a',
    shard: null,
    shardCount: 1,
    exitCode: null,
    signal: null,
    attempts: 1,
    queuedAt: 0,
    startedAt: 0,
    endedAt: null,
    durationMs: null,
    agentRoot: null,
    error: null,
    phase: 'running',
    ahead: null,
    previousAgent: null,
    retryReason: null,
    ...over,
  };
}
