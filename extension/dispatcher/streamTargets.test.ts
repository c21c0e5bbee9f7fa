import assert from 'node:assert/strict';
import type { AgentInfo } from '../../shared/rpc';
import { streamTargets } from './streamTargets';

const agent = (id: string, name = id): AgentInfo =>
  ({ id, name, address: `${id}:7879` }) as unknown as AgentInfo;

describe('streamTargets', () => {
  const [pi, desk, phone] = [agent('pi'), agent('desk'), agent('phone')];

  it('streams to every agent for target all, and for shards', () => {
    for (const wants of [
      streamTargets({ command: 'x', target: { kind: 'all' } }),
      streamTargets({ command: 'x', shards: 3 }),
    ])
      assert.deepEqual([pi, desk, phone].map(wants), [true, true, true]);
  });

  it('streams only to the named agent, by name or address', () => {
    assert.deepEqual(
      [pi, desk].map(streamTargets({ command: 'x', target: { kind: 'agent', name: 'desk' } })),
      [false, true],
    );
    assert.deepEqual(
      [pi, desk].map(streamTargets({ command: 'x', target: { kind: 'agent', name: 'pi:7879' } })),
      [true, false],
    );
  });

  it('streams one task for any agent to the first offered only, however often it is asked', () => {
    const wants = streamTargets({ command: 'x' });
    assert.deepEqual([desk, pi, desk, phone].map(wants), [true, false, true, false]);
  });
});
