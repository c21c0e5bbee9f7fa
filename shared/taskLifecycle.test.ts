import assert from 'node:assert/strict';
import type { TaskPhase } from './taskLifecycle';
import {
  assertMove,
  attemptOf,
  canMove,
  holdsAgent,
  isFinalPhase,
  statusOfPhase,
} from './taskLifecycle';

const at = { agent: 'a:1', agentName: 'pi', wireId: 't', attempt: 1 };

describe('task lifecycle', () => {
  it('allows the moves of the diagram and no others', () => {
    assert.equal(canMove('queued', 'syncing'), true);
    assert.equal(canMove('running', 'detached'), true);
    assert.equal(canMove('detached', 'running'), true);
    assert.equal(canMove('detached', 'queued'), true);
    assert.equal(canMove('collecting', 'final'), true);
    // Losing the agent while collecting never runs the command again through detached.
    assert.equal(canMove('collecting', 'detached'), false);
    assert.equal(canMove('final', 'queued'), false);
    assert.equal(canMove('queued', 'collecting'), false);
    assert.throws(() => assertMove('t', 'final', 'running'), /illegal move final -> running/);
  });

  it('derives status, attempt and holding from the phase, once', () => {
    const phases: TaskPhase[] = [
      { phase: 'queued', since: 0, reason: null },
      { phase: 'syncing', since: 0, ...at },
      { phase: 'waiting', since: 0, ahead: 2, ...at },
      { phase: 'running', startedAt: 0, ...at },
      { phase: 'detached', since: 0, was: 'running', startedAt: 0, ...at },
      { phase: 'final', status: 'completed', endedAt: 1 },
    ];
    assert.deepEqual(phases.map(statusOfPhase), [
      'pending',
      'running',
      'running',
      'running',
      'running',
      'completed',
    ]);
    assert.deepEqual(phases.map(holdsAgent), [false, false, true, true, false, false]);
    assert.deepEqual(
      phases.map((p) => attemptOf(p)?.wireId ?? null),
      [null, 't', 't', 't', 't', null],
    );
    assert.deepEqual(phases.map(isFinalPhase), [false, false, false, false, false, true]);
  });
});
