import assert from 'node:assert/strict';
import type { AgentSlots } from './scheduler';
import { Scheduler } from './scheduler';

function agent(id: string, over: Partial<AgentSlots> = {}): AgentSlots {
  return {
    id,
    name: id,
    maxJobs: 2,
    running: 0,
    queued: 0,
    yoursRunning: 0,
    yoursQueued: 0,
    resting: false,
    ...over,
  };
}

const any = { kind: 'any' } as const;

describe('scheduler', () => {
  it('places nothing without agents, then what fits once one arrives', () => {
    const s = new Scheduler();
    for (const t of ['t1', 't2', 't3']) s.enqueue(t, any, 'g');
    assert.deepEqual(s.place(), []);
    s.agentUpdate(agent('a'));
    assert.deepEqual(s.place(), [
      { task: 't1', agent: 'a' },
      { task: 't2', agent: 'a' },
    ]);
    // Not reported by the agent yet: nothing more goes there, not even to wait.
    assert.deepEqual(s.place(), []);
    assert.deepEqual(s.queued, ['t3']);
  });

  it('places on what the agent reports free, counting what other dispatchers run there', () => {
    const s = new Scheduler();
    s.agentUpdate(agent('a', { maxJobs: 2, running: 1 }));
    for (const t of ['t1', 't2', 't3', 't4']) s.enqueue(t, any, 'g');
    // t1 takes the free slot; t2 waits at the agent. Until the agent reports t1
    // running, t1 counts as one of ours waiting there too (at most maxJobs do).
    assert.deepEqual(s.place(), [
      { task: 't1', agent: 'a' },
      { task: 't2', agent: 'a' },
    ]);
    assert.equal(s.freeSlots('a'), 0);
    assert.deepEqual(s.queued, ['t3', 't4']);
  });

  it('sends a bounded number of tasks to wait in a full agent queue, in FIFO order', () => {
    const s = new Scheduler();
    s.agentUpdate(agent('a', { maxJobs: 1 }));
    for (const t of ['t1', 't2', 't3', 't4']) s.enqueue(t, any, 'g');
    assert.deepEqual(s.place(), [{ task: 't1', agent: 'a' }]);
    s.agentUpdate(agent('a', { maxJobs: 1, running: 1, yoursRunning: 1 }));
    // One may wait at the agent (maxJobs of ours), so it starts the moment the slot frees.
    assert.deepEqual(s.place(), [{ task: 't2', agent: 'a' }]);
    s.agentUpdate(
      agent('a', { maxJobs: 1, running: 1, queued: 1, yoursRunning: 1, yoursQueued: 1 }),
    );
    assert.deepEqual(s.place(), []);
    s.release('a', 't1');
    s.agentUpdate(agent('a', { maxJobs: 1, running: 1, yoursRunning: 1 }));
    assert.deepEqual(s.place(), [{ task: 't3', agent: 'a' }]);
    assert.deepEqual(s.queued, ['t4']);
  });

  it('spreads the tasks of one submission over agents first, then doubles up', () => {
    const s = new Scheduler();
    s.agentUpdate(agent('a'));
    s.agentUpdate(agent('b'));
    s.enqueue('s0', any, 'g');
    s.enqueue('s1', any, 'g');
    const placed = s.place();
    assert.deepEqual(new Set(placed.map((p) => p.agent)), new Set(['a', 'b']));
    s.enqueue('s2', any, 'g');
    s.enqueue('s3', any, 'g');
    const more = s.place();
    assert.deepEqual(new Set(more.map((p) => p.agent)), new Set(['a', 'b']));
  });

  it('spreads even when one agent already has the workspace; packs when asked', () => {
    const s = new Scheduler((_task, a) => a === 'a');
    s.agentUpdate(agent('a'));
    s.agentUpdate(agent('b'));
    s.enqueue('s0', any, 'g');
    s.enqueue('s1', any, 'g');
    assert.deepEqual(s.place(), [
      { task: 's0', agent: 'a' },
      { task: 's1', agent: 'b' },
    ]);
    const p = new Scheduler();
    p.agentUpdate(agent('a'));
    p.agentUpdate(agent('b'));
    p.enqueue('s0', any, 'g', { pack: true });
    p.enqueue('s1', any, 'g', { pack: true });
    const packed = p.place();
    assert.equal(packed[0]?.agent, packed[1]?.agent);
  });

  it('keeps pinned and named tasks for their agent, without blocking the others', () => {
    const s = new Scheduler();
    s.agentUpdate(agent('a', { maxJobs: 1 }));
    s.enqueue('pinned', { kind: 'agentId', id: 'b' }, 'g1');
    s.enqueue('named', { kind: 'name', name: 'b' }, 'g2');
    s.enqueue('free', any, 'g3');
    assert.deepEqual(s.place(), [{ task: 'free', agent: 'a' }]);
    assert.deepEqual(s.queued, ['pinned', 'named']);
    s.agentUpdate(agent('b', { maxJobs: 2 }));
    assert.deepEqual(s.place(), [
      { task: 'pinned', agent: 'b' },
      { task: 'named', agent: 'b' },
    ]);
  });

  it('places nothing on a resting agent, an offline one, or one with no slots', () => {
    const s = new Scheduler();
    s.agentUpdate(agent('a', { resting: true }));
    s.agentUpdate(agent('b', { maxJobs: 0 }));
    s.agentUpdate(agent('c'));
    s.agentOffline('c');
    s.enqueue('t', any, 'g');
    assert.deepEqual(s.place(), []);
    assert.equal(s.hasOtherEligible(any, 'x'), false);
    s.agentUpdate(agent('c'));
    assert.equal(s.hasOtherEligible(any, 'x'), true);
    assert.equal(s.hasOtherEligible(any, 'c'), false);
    assert.deepEqual(s.place(), [{ task: 't', agent: 'c' }]);
  });

  it('puts a retry at the front of the line', () => {
    const s = new Scheduler();
    s.enqueue('t1', any, 'g');
    s.enqueue('retry', any, 'g', { front: true });
    assert.deepEqual(s.queued, ['retry', 't1']);
    assert.equal(s.dequeue('t1'), true);
    assert.equal(s.dequeue('t1'), false);
  });
});
