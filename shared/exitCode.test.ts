import assert from 'node:assert/strict';
import type { TaskInfo } from './rpc';
import { runExitCode, taskExitCode } from './exitCode';
import { taskInfo } from '../test/helpers/taskInfo';

function task(over: Partial<TaskInfo>): TaskInfo {
  return taskInfo({ status: 'completed', exitCode: 0, endedAt: 0, durationMs: 0, ...over });
}

describe('exit status', () => {
  it('passes the remote exit code through for one task', () => {
    assert.equal(runExitCode([task({ status: 'failed', exitCode: 3 })]), 3);
    assert.equal(runExitCode([task({})]), 0);
  });

  it('uses 124 for a timeout, 130 for a cancel, 125 for Octask failures', () => {
    assert.equal(
      taskExitCode(task({ status: 'timed_out', exitCode: null, signal: 'SIGTERM' })),
      124,
    );
    assert.equal(taskExitCode(task({ status: 'cancelled' })), 130);
    assert.equal(taskExitCode(task({ status: 'lost' })), 125);
    assert.equal(
      taskExitCode(
        task({
          status: 'failed',
          exitCode: null,
          error: { code: 'E_POLICY_REFUSED', message: '' },
        }),
      ),
      125,
    );
  });

  it('maps a death by signal to 128 + its number', () => {
    assert.equal(taskExitCode(task({ status: 'failed', exitCode: null, signal: 'SIGKILL' })), 137);
  });

  it('for several tasks, takes the first failure in shard order', () => {
    const tasks = [
      task({ shard: 2, status: 'failed', exitCode: 7 }),
      task({ shard: 0 }),
      task({ shard: 1, status: 'failed', exitCode: 4 }),
    ];
    assert.equal(runExitCode(tasks), 4);
    assert.equal(runExitCode([task({ shard: 0 }), task({ shard: 1 })]), 0);
  });
});
