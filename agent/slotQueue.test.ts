import assert from 'node:assert/strict';
import { SlotQueue } from './slotQueue';

describe('SlotQueue', () => {
  it('never runs more than maxJobs, and starts the waiting in arrival order', () => {
    const q = new SlotQueue<string>(2);
    assert.equal(q.offer('a'), true);
    assert.equal(q.offer('b'), true);
    assert.equal(q.offer('c'), false);
    assert.equal(q.offer('d'), false);
    assert.equal(q.running, 2);
    assert.equal(q.queued, 2);
    assert.equal(q.ahead('d'), 1);
    assert.deepEqual(q.release(), ['c']);
    assert.deepEqual(q.release(), ['d']);
    assert.deepEqual(q.release(), []);
    assert.equal(q.running, 1);
  });

  it('does not let a newcomer jump the line while others wait', () => {
    const q = new SlotQueue<string>(1);
    q.offer('a');
    q.offer('b');
    q.release(); // b starts
    assert.equal(q.offer('c'), false);
    assert.deepEqual(q.queue, ['c']);
  });

  it('withdraws a waiting task, and holds new starts while resting', () => {
    const q = new SlotQueue<string>(1);
    q.offer('a');
    q.offer('b');
    q.offer('c');
    assert.equal(q.withdraw('b'), true);
    assert.equal(q.withdraw('b'), false);
    assert.deepEqual(q.hold(true), []);
    assert.deepEqual(q.release(), []);
    assert.equal(q.offer('d'), false);
    assert.deepEqual(q.hold(false), ['c']);
    assert.equal(q.running, 1);
  });
});
