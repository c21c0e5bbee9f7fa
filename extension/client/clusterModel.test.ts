import assert from 'node:assert/strict';
import type { AgentInfo, TaskInfo } from '../../shared/rpc';
import { ClusterModel, FINISHED_TASKS_KEPT, OUTPUT_LIMIT, TaskOutput } from './clusterModel';
import { taskInfo } from '../../test/helpers/taskInfo';

function task(id: string, over: Partial<TaskInfo> = {}): TaskInfo {
  return taskInfo({ id, group: `g-${id}`, ...over });
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

describe('ClusterModel runs', () => {
  const t = (id: string, group: string, over: Partial<TaskInfo> = {}): TaskInfo => ({
    ...task(id),
    group,
    ...over,
  });

  it('groups tasks by run, running runs first, shards in order', () => {
    const model = new ClusterModel();
    model.applyTask(t('old', 'g1', { status: 'completed', queuedAt: 1 }));
    model.applyTask(t('s1', 'g2', { status: 'completed', queuedAt: 5, shard: 1, shardCount: 2 }));
    model.applyTask(t('s0', 'g2', { status: 'running', queuedAt: 5, shard: 0, shardCount: 2 }));
    model.applyTask(t('new', 'g3', { status: 'failed', queuedAt: 9 }));
    const runs = model.runList();
    assert.deepEqual(
      runs.map((r) => [r.group, r.tasks.map((x) => x.id)]),
      [
        ['g2', ['s0', 's1']],
        ['g3', ['new']],
        ['g1', ['old']],
      ],
    );
  });

  it('labels a run by the label it was submitted with, else its command', () => {
    const model = new ClusterModel();
    model.rememberSpec('g1', { command: 'npm test' }, 'unit tests');
    model.applyTask(t('a', 'g1', { command: 'npm test' }));
    assert.equal(model.labelOf('g1', 'npm test'), 'unit tests');
    assert.equal(model.labelOf('g2', 'make   all'), 'make all');
  });

  it('Clear Finished drops finished tasks and keeps them out of later listings', () => {
    const model = new ClusterModel();
    const removed: string[][] = [];
    model.onTasksRemoved.on((ids) => removed.push(ids));
    model.rememberSpec('g1', { command: 'x' }, 'label');
    model.applyTask(t('done', 'g1', { status: 'completed' }));
    model.applyOutput({ task: 'done', stream: 'stdout', text: 'hi' });
    model.applyTask(t('live', 'g2'));
    assert.equal(model.clearFinished(), 1);
    assert.deepEqual(removed, [['done']]);
    assert.deepEqual([...model.tasks.keys()], ['live']);
    assert.equal(model.outputs.has('done'), false);
    assert.equal(model.specs.has('g1'), false);
    assert.equal(model.labels.has('g1'), false);
    // A new dispatcher's listing (after a restart) must not bring it back.
    model.applyTask(t('done', 'g1', { status: 'completed' }));
    assert.equal(model.tasks.has('done'), false);
  });
});

describe('ClusterModel agents', () => {
  const agent = (status: AgentInfo['status']): AgentInfo => ({
    id: 'a',
    name: 'pi',
    address: '10.0.0.2:7879',
    status,
    version: null,
    protocol: null,
    os: null,
    arch: null,
    cpus: null,
    memory: null,
    maxJobs: 1,
    running: 0,
    queued: 0,
    loadAvg: null,
    freeMemory: null,
    battery: null,
    resting: false,
    label: 'pi',
    tags: [],
    source: 'listed',
    lastError: null,
  });

  it("a removed agent's late closing report does not bring it back; adding it or it coming online does", () => {
    const model = new ClusterModel();
    model.applyAgent(agent('online'));
    model.removeAgent('10.0.0.2:7879');
    model.applyAgent(agent('offline'));
    assert.equal(model.agents.size, 0);
    model.applyAgent(agent('online'));
    assert.equal(model.agents.size, 0, "a listed agent's last report after removal");
    model.applyAgent({ ...agent('online'), source: 'mdns' });
    assert.equal(model.agents.get('10.0.0.2:7879')?.status, 'online', 'found again by mDNS');
    model.removeAgent('10.0.0.2:7879');
    model.agentAdded(agent('connecting'));
    assert.equal(model.agents.get('10.0.0.2:7879')?.status, 'connecting', 'added again by address');
  });

  it('keeps the name an agent had when it later shows only as its address (refused, gone)', () => {
    const model = new ClusterModel();
    model.applyAgent(agent('online'));
    model.applyAgent({ ...agent('wrong_key'), name: '10.0.0.2:7879' });
    assert.equal(model.agents.get('10.0.0.2:7879')?.name, 'pi');
    assert.equal(model.agents.get('10.0.0.2:7879')?.status, 'wrong_key');
  });
});

describe('ClusterModel through a dispatcher restart with a journal', () => {
  it('keeps tasks, and puts the journal’s earlier output before what came since', () => {
    const model = new ClusterModel();
    model.applyTask(task('t1', { status: 'pending', phase: 'queued' }));
    model.applyTask(task('t1'));
    model.applyOutput({ task: 't1', stream: 'stdout', text: 'one\ntwo\n' });
    model.dispatcherAway();
    assert.equal(model.tasks.get('t1')?.status, 'running');
    // Relayed again by the new dispatcher (the journal had only "one").
    model.applyOutput({ task: 't1', stream: 'stdout', text: 'two\n' });
    model.prependOutput('t1', 'one\n');
    assert.equal(model.outputs.get('t1')?.text(), 'one\ntwo\n');
  });

  it('reads back the output of a task first seen running (a reloaded window)', () => {
    const model = new ClusterModel();
    model.applyTask(task('t2'));
    model.applyOutput({ task: 't2', stream: 'stdout', text: 'later\n' });
    assert.equal(model.outputs.get('t2')?.fresh, true);
    model.prependOutput('t2', 'earlier\n');
    assert.equal(model.outputs.get('t2')?.text(), 'earlier\nlater\n');
  });
});
