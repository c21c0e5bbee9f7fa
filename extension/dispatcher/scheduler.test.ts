import assert from 'node:assert/strict';
import { Scheduler } from './scheduler';

describe('scheduler', () => {
  it('places nothing without agents, then everything that fits once one arrives', () => {
    const s = new Scheduler();
    s.enqueue('t1', { kind: 'any' });
    s.enqueue('t2', { kind: 'any' });
    s.enqueue('t3', { kind: 'any' });
    assert.deepEqual(s.place(), []);
    s.agentOnline({ id: 'a', name: 'pi', slots: 2 });
    assert.deepEqual(s.place(), [
      { task: 't1', agent: 'a' },
      { task: 't2', agent: 'a' },
    ]);
    assert.deepEqual(s.queued, ['t3']);
  });

  it('places the next task the moment a slot frees, in FIFO order', () => {
    const s = new Scheduler();
    s.agentOnline({ id: 'a', name: 'pi', slots: 1 });
    for (const t of ['t1', 't2', 't3']) s.enqueue(t, { kind: 'any' });
    assert.deepEqual(s.place(), [{ task: 't1', agent: 'a' }]);
    assert.deepEqual(s.place(), []);
    s.release('a');
    assert.deepEqual(s.place(), [{ task: 't2', agent: 'a' }]);
    s.release('a');
    assert.deepEqual(s.place(), [{ task: 't3', agent: 'a' }]);
  });

  it('spreads work to the least loaded agent', () => {
    const s = new Scheduler();
    s.agentOnline({ id: 'a', name: 'a', slots: 2 });
    s.agentOnline({ id: 'b', name: 'b', slots: 2 });
    for (const t of ['t1', 't2', 't3', 't4']) s.enqueue(t, { kind: 'any' });
    const placed = s.place();
    assert.equal(placed.length, 4);
    assert.equal(placed.filter((p) => p.agent === 'a').length, 2);
    assert.equal(placed.filter((p) => p.agent === 'b').length, 2);
    assert.notEqual(placed[0]?.agent, placed[1]?.agent);
  });

  it('counts load relative to slots', () => {
    const s = new Scheduler();
    s.agentOnline({ id: 'big', name: 'big', slots: 8 }, 2);
    s.agentOnline({ id: 'small', name: 'small', slots: 2 }, 1);
    s.enqueue('t', { kind: 'any' });
    assert.deepEqual(s.place(), [{ task: 't', agent: 'big' }]);
  });

  it('does not let a task waiting for a busy agent hold back the others', () => {
    const s = new Scheduler();
    s.agentOnline({ id: 'a', name: 'a', slots: 1 }, 1);
    s.agentOnline({ id: 'b', name: 'b', slots: 1 });
    s.enqueue('for-a', { kind: 'name', name: 'a' });
    s.enqueue('any', { kind: 'any' });
    assert.deepEqual(s.place(), [{ task: 'any', agent: 'b' }]);
    assert.deepEqual(s.queued, ['for-a']);
    s.release('a');
    assert.deepEqual(s.place(), [{ task: 'for-a', agent: 'a' }]);
  });

  it('honours pinned and named targets', () => {
    const s = new Scheduler();
    s.agentOnline({ id: 'a', name: 'alpha', slots: 4 });
    s.agentOnline({ id: 'b', name: 'beta', slots: 4 });
    s.enqueue('p', { kind: 'agentId', id: 'b' });
    s.enqueue('n', { kind: 'name', name: 'alpha' });
    assert.deepEqual(s.place(), [
      { task: 'p', agent: 'b' },
      { task: 'n', agent: 'a' },
    ]);
  });

  it('takes an offline agent out of rotation and reports tasks pinned to it', () => {
    const s = new Scheduler();
    s.agentOnline({ id: 'a', name: 'a', slots: 1 });
    s.agentOffline('a');
    s.enqueue('pinned', { kind: 'agentId', id: 'a' });
    s.enqueue('free', { kind: 'any' });
    assert.deepEqual(s.place(), []);
    assert.deepEqual(s.unplaceable(), ['pinned', 'free']);
    s.agentOnline({ id: 'a', name: 'a', slots: 1 });
    assert.deepEqual(s.place(), [{ task: 'pinned', agent: 'a' }]);
  });

  it('puts a retried task at the front and can drop a queued one', () => {
    const s = new Scheduler();
    s.enqueue('t1', { kind: 'any' });
    s.enqueue('t2', { kind: 'any' });
    s.enqueue('retry', { kind: 'any' }, true);
    assert.deepEqual(s.queued, ['retry', 't1', 't2']);
    assert.equal(s.dequeue('t1'), true);
    assert.equal(s.dequeue('t1'), false);
    assert.deepEqual(s.queued, ['retry', 't2']);
  });
});
