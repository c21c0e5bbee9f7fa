import assert from 'node:assert/strict';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runOn, startAgent, tempDir } from '../helpers/agentProcess';
import { dispatcherHello, rawDial } from '../helpers/rawPeer';
import type { ClusterKey } from '../../shared/clusterKey';
import { EXIT } from '../../shared/exitCode';

describe('timeouts a key holder gives are kept to what a timer can hold @integration', function () {
  this.timeout(60_000);
  const dir = tempDir();
  let keyFile: string;
  let key: ClusterKey;
  let agent: StartedAgent;

  before(async () => {
    ({ path: keyFile, key } = newKeyFile(dir.path));
    agent = await startAgent({ keyFile, name: 'timer' });
  });
  after(async () => {
    await agent?.stop();
    dir.cleanup();
  });

  const run = (timeout: string) =>
    runOn(agent.address, keyFile, ['--timeout', timeout, '--', 'sleep 0.3 && echo still here']);

  it('octask run --timeout 2147484 is a usage error, not a task ended at once', async () => {
    const r = await run('2147484');
    assert.equal(r.code, EXIT.usage, r.stderr);
    assert.match(r.stderr, /--timeout must be a positive number of seconds up to 2147483/);
    assert.doesNotMatch(r.stdout, /still here/);
  });

  it('octask run --timeout 2147483 runs the task to its end', async () => {
    const r = await run('2147483');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /still here/);
  });

  it('a run frame with timeoutMs 2^31 is refused with E_BAD_FIELD', async () => {
    const peer = await rawDial(agent.port, key);
    peer.send(dispatcherHello());
    assert.equal((await peer.next()).t, 'hello');
    peer.send({ t: 'run', task: 'long', command: 'echo ran', env: {}, timeoutMs: 2 ** 31 });
    const reply = await peer.next();
    assert.equal(reply.t, 'error');
    assert.equal((reply as { code: string }).code, 'E_BAD_FIELD');
    assert.match((reply as { message: string }).message, /run\.timeoutMs must be 0 to 2147483647/);
    peer.ws.close();
  });
});
