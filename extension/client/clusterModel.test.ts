import assert from 'node:assert/strict';
import type { TaskInfo } from '../../shared/rpc';
import { ClusterModel, FINISHED_TASKS_KEPT, OUTPUT_LIMIT, TaskOutput } from './clusterModel';

function task(id: string, over: Partial<TaskInfo> = {}): TaskInfo {
  return {
    id,
    group: `g-${id}`,
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

describe('ClusterModel', () => {
  it('marks unfinished tasks lost when the dispatcher goes away, and tells listeners', () => {
    const model = new ClusterModel();
    const seen: string[] = [];
    model.onTask.on((t) => seen.push(`${t.id}:${t.status}`));
    model.applyTask(task('a'));
    model.applyTask(task('b', { status: 'completed', exitCode: 0 }));
    model.dispatcherLost('gone');
    assert.equal(model.tasks.get('a')?.status, 'lost');
    assert.equal(model.tasks.get('a')?.error?.code, 'E_DISPATCHER_LOST');
    assert.equal(model.tasks.get('b')?.status, 'completed');
    assert.deepEqual(seen, ['a:running', 'b:completed', 'a:lost']);
  });

  it('keeps a bounded number of finished tasks, with their output and specs', () => {
    const model = new ClusterModel();
    for (let i = 0; i < FINISHED_TASKS_KEPT + 5; i++) {
      model.rememberSpec(`g-${i}`, { command: 'x' });
      model.applyOutput({ task: String(i), stream: 'stdout', text: 'hi' });
      model.applyTask(task(String(i), { status: 'completed', queuedAt: i }));
    }
    assert.equal(model.tasks.size, FINISHED_TASKS_KEPT);
    assert.equal(model.tasks.has('0'), false);
    assert.equal(model.outputs.has('0'), false);
    assert.equal(model.specs.has('g-0'), false);
    assert.equal(model.specs.has(`g-${FINISHED_TASKS_KEPT + 4}`), true);
  });

  it('lists running, then queued, then finished, newest first', () => {
    const model = new ClusterModel();
    model.applyTask(task('old', { status: 'completed', queuedAt: 1 }));
    model.applyTask(task('new', { status: 'failed', queuedAt: 5 }));
    model.applyTask(task('q', { status: 'pending', queuedAt: 2 }));
    model.applyTask(task('r', { queuedAt: 0 }));
    assert.deepEqual(
      model.taskList().map((t) => t.id),
      ['r', 'q', 'new', 'old'],
    );
  });
});

describe('TaskOutput', () => {
  it('drops the oldest text beyond the limit and says so', () => {
    const out = new TaskOutput();
    const chunk = 'x'.repeat(OUTPUT_LIMIT / 4);
    for (let i = 0; i < 6; i++) out.append(chunk);
    out.append('tail');
    assert.ok(out.text().startsWith('[… '));
    assert.ok(out.text().endsWith('tail'));
    assert.ok(out.dropped >= chunk.length * 2);
  });
});
