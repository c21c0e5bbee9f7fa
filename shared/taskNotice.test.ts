import assert from 'node:assert/strict';
import type { TaskInfo } from './rpc';
import { taskNotice } from './taskNotice';
import { taskInfo } from '../test/helpers/taskInfo';

function info(over: Partial<TaskInfo>): TaskInfo {
  return taskInfo({ agent: 'pi', startedAt: null, phase: 'waiting', ...over });
}

describe('task notices', () => {
  it('says once that a task waits for a slot, and how many are ahead', () => {
    const sent = info({});
    const waiting = info({ ahead: 2 });
    assert.equal(taskNotice(sent, waiting), 'waiting for a free slot on pi (2 ahead)');
    assert.equal(taskNotice(waiting, info({ ahead: 1 })), null);
    assert.equal(
      taskNotice(sent, info({ ahead: 0 })),
      'waiting for a free slot on pi (next in line)',
    );
  });

  it('says when the link drops, when it is back, and when the task runs again elsewhere', () => {
    const running = info({ phase: 'running' });
    const detached = info({ phase: 'detached' });
    assert.equal(taskNotice(running, detached), 'reconnecting to pi…');
    assert.equal(taskNotice(detached, detached), null);
    assert.equal(taskNotice(detached, running), 'reconnected to pi; following the task again');
    const queued = info({ phase: 'queued', status: 'pending', retryReason: 'pi lost' });
    const again = info({ phase: 'waiting', agent: 'desk', attempts: 2, retryReason: 'pi lost' });
    assert.equal(taskNotice(queued, again), '── pi lost; running again on desk (attempt 2)');
    assert.equal(taskNotice(undefined, running), null);
  });
});
