import assert from 'node:assert/strict';
import type { AgentInfo } from '../shared/rpc';
import { OCTASK_VERSION } from '../shared/version';
import { formatAgents, isOutdated } from './agents';

function agent(name: string, version: string | null): AgentInfo {
  return {
    id: name,
    name,
    address: `${name}.local:7879`,
    status: 'online',
    version,
    protocol: 1,
    os: 'linux',
    arch: 'arm64',
    cpus: 4,
    memory: null,
    maxJobs: 4,
    running: 1,
    queued: 0,
    loadAvg: null,
    freeMemory: null,
    battery: null,
    resting: false,
    label: name,
    tags: [],
    source: 'listed',
    lastError: null,
  };
}

describe('octask agents', () => {
  it('marks agents that run an older Octask than this one', () => {
    assert.equal(isOutdated(agent('pi', '0.0.9'), '0.1.0'), true);
    assert.equal(isOutdated(agent('pi', '0.1.0'), '0.1.0'), false);
    assert.equal(isOutdated(agent('pi', '0.2.0'), '0.1.0'), false, 'newer is not older');
    assert.equal(isOutdated(agent('pi', null), '0.1.0'), false, 'unknown is not older');
  });

  it('shows "(older)" beside an outdated version in the table, and nothing beside a current one', () => {
    const text = formatAgents([agent('pi', '0.0.1'), agent('desk', OCTASK_VERSION)]);
    const [header, pi, desk] = text.split('\n');
    assert.match(header ?? '', /^NAME +ADDRESS +VERSION +OS/);
    assert.match(pi ?? '', /^pi +pi\.local:7879 +0\.0\.1 \(older\) +linux/);
    assert.match(desk ?? '', new RegExp(`^desk +desk\\.local:7879 +${OCTASK_VERSION} +linux`));
    assert.doesNotMatch(desk ?? '', /older/);
  });
});
