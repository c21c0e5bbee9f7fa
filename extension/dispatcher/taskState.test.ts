import assert from 'node:assert/strict';
import { assertTransition, canTransition, isFinal } from './taskState';
import { TaskTable } from './taskTable';

describe('task states', () => {
  it('allows the documented lifecycle', () => {
    assert.ok(canTransition('pending', 'running'));
    assert.ok(canTransition('running', 'completed'));
    assert.ok(canTransition('running', 'pending'), 'a retry goes back to the queue');
    assert.ok(canTransition('pending', 'cancelled'));
  });

  it('never leaves a final state', () => {
    for (const s of ['completed', 'failed', 'timed_out', 'cancelled', 'lost'] as const) {
      assert.ok(isFinal(s));
      assert.ok(!canTransition(s, 'running'));
      assert.throws(() => assertTransition('t', s, 'pending'), /illegal transition/);
    }
  });

  it('cannot complete what never ran', () => {
    assert.ok(!canTransition('pending', 'completed'));
  });
});

describe('task table', () => {
  it('gives shards their index and count, and shares a group id', () => {
    const table = new TaskTable();
    const made = table.create(
      { command: 'x', env: { A: '1' } },
      [0, 1, 2].map((i) => ({ where: { kind: 'any' as const }, shard: i, agent: null })),
      3,
    );
    assert.equal(made.length, 3);
    assert.equal(new Set(made.map((m) => m.info.group)).size, 1);
    assert.deepEqual(made[2]?.env, { A: '1', OCTASK_SHARD_INDEX: '2', OCTASK_SHARD_COUNT: '3' });
  });

  it('counts attempts and stamps times through a retry', () => {
    const table = new TaskTable();
    const [t] = table.create(
      { command: 'x' },
      [{ where: { kind: 'any' }, shard: null, agent: null }],
      1,
    );
    const id = t!.info.id;
    table.transition(id, 'running');
    table.transition(id, 'pending');
    const done = table.transition(id, 'running');
    assert.equal(done.info.attempts, 2);
    table.transition(id, 'completed');
    assert.ok(done.final);
    assert.ok(done.info.endedAt !== null && done.info.durationMs !== null);
    assert.throws(() => table.transition(id, 'running'));
  });
});
