import assert from 'node:assert/strict';
import type { AgentInfo, TaskInfo } from '../../shared/rpc';
import { agentDescription, formatBytes, formatDuration, taskDescription } from './format';

const task: TaskInfo = {
  id: 't1',
  group: 'g',
  command: 'make',
  status: 'failed',
  agent: 'pi',
  shard: 1,
  shardCount: 3,
  exitCode: 2,
  signal: null,
  attempts: 1,
  queuedAt: 0,
  startedAt: 10,
  endedAt: 1510,
  durationMs: 1500,
  agentRoot: null,
  error: null,
  phase: 'final',
  ahead: null,
  previousAgent: null,
  retryReason: null,
};

describe('view text', () => {
  it('formats durations', () => {
    assert.equal(formatDuration(12), '12 ms');
    assert.equal(formatDuration(1500), '1.5 s');
    assert.equal(formatDuration(125_000), '2m 05s');
    assert.equal(formatBytes(752), '752 B');
    assert.equal(formatBytes(3 * 1024 * 1024 + 512 * 1024), '3.5 MiB');
  });

  it('describes a task by place, time and ending', () => {
    assert.equal(taskDescription(task), 'pi#1 · 1.5 s · exit 2');
    assert.equal(
      taskDescription({ ...task, status: 'running', durationMs: null, shardCount: 1 }, 2010),
      'pi · 2.0 s',
    );
    assert.equal(
      taskDescription({
        ...task,
        status: 'lost',
        agent: null,
        durationMs: null,
        error: { code: 'E_X', message: '' },
      }),
      'queued#1 · lost · E_X',
    );
  });

  it('describes an agent', () => {
    const agent = {
      address: '10.0.0.2:7879',
      status: 'busy',
      os: 'linux',
      arch: 'arm64',
      running: 2,
      maxJobs: 4,
    } as AgentInfo;
    assert.equal(agentDescription(agent), 'busy · 10.0.0.2:7879 · linux/arm64 · 2/4 slots');
    assert.equal(
      agentDescription({ ...agent, status: 'wrong_key', os: null }),
      'wrong key · 10.0.0.2:7879',
    );
  });
});
