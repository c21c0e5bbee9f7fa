import assert from 'node:assert/strict';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runOn, startAgent, tempDir } from '../helpers/agentProcess';
import type { RawPeer } from '../helpers/rawPeer';
import { dispatcherHello, rawDial } from '../helpers/rawPeer';
import type { ClusterKey } from '../../shared/clusterKey';
import { ErrorCode } from '../../shared/errors';
import { CloseCode, MAX_FRAME_BYTES } from '../../shared/protocol';
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false });

describe('hostile frames close only their own connection @integration', function () {
  this.timeout(60_000);
  const dir = tempDir();
  let keyFile: string;
  let key: ClusterKey;
  let agent: StartedAgent;
  let bystander: RawPeer;

  before(async () => {
    ({ path: keyFile, key } = newKeyFile(dir.path));
    agent = await startAgent({ keyFile, name: 'sturdy' });
    // A well-behaved dispatcher stays connected throughout and must not notice a thing.
    bystander = await rawDial(agent.port, key);
    bystander.send(dispatcherHello());
    assert.equal((await bystander.next()).t, 'hello');
  });
  after(async () => {
    bystander?.ws.close();
    await agent?.stop();
    dir.cleanup();
  });

  async function expectRejected(
    send: (peer: RawPeer) => void,
    code: string,
    closeCode: number = CloseCode.ProtocolError,
  ): Promise<void> {
    const peer = await rawDial(agent.port, key);
    send(peer);
    const reply = await peer.next();
    assert.equal(reply.t, 'error');
    assert.equal(reply.t === 'error' && reply.code, code);
    assert.equal((await peer.closed).code, closeCode);
  }

  it('garbage bytes', () =>
    expectRejected((p) => p.ws.send(Buffer.from('not msgpack at all')), ErrorCode.FrameMalformed));
  it('a text frame', () =>
    expectRejected((p) => p.ws.send('{"t":"hello"}'), ErrorCode.FrameMalformed));
  it('an unknown message type', () =>
    expectRejected((p) => p.ws.send(packr.pack({ t: 'format-disk' })), ErrorCode.UnknownType));
  it('a field of the wrong type', () =>
    expectRejected(
      (p) => p.ws.send(packr.pack({ ...dispatcherHello(), cpus: 'many' })),
      ErrorCode.BadField,
    ));
  it('a run before hello', () =>
    expectRejected(
      (p) => p.send({ t: 'run', task: 'x', command: 'echo', env: {}, timeoutMs: 0 }),
      ErrorCode.HelloRequired,
    ));
  it('a run with a mistyped env after hello', async () => {
    const peer = await rawDial(agent.port, key);
    peer.send(dispatcherHello());
    assert.equal((await peer.next()).t, 'hello');
    peer.ws.send(
      packr.pack({ t: 'run', task: 'x', command: 'echo', env: { PATH: 7 }, timeoutMs: 0 }),
    );
    const reply = await peer.next();
    assert.equal(reply.t === 'error' && reply.code, ErrorCode.BadField);
    assert.equal((await peer.closed).code, CloseCode.ProtocolError);
  });

  it('an oversized frame closes with 1009', async () => {
    const peer = await rawDial(agent.port, key);
    peer.ws.send(Buffer.alloc(MAX_FRAME_BYTES + 1024));
    assert.equal((await peer.closed).code, CloseCode.TooLarge);
  });

  it('leaves the agent serving: the bystander and a new dispatcher still run tasks', async () => {
    bystander.send({ t: 'run', task: 'still-here', command: 'echo alive', env: {}, timeoutMs: 0 });
    const seen: string[] = [];
    for (;;) {
      const m = await bystander.next();
      seen.push(m.t);
      if (m.t === 'output') assert.equal(Buffer.from(m.data).toString(), 'alive\n');
      if (m.t === 'exit') {
        assert.equal(m.outcome, 'completed');
        break;
      }
    }
    assert.deepEqual(seen, ['started', 'output', 'exit']);
    const r = await runOn(agent.address, keyFile, ['--', 'echo fine']);
    assert.equal(r.stdout, 'fine\n');
    assert.equal(agent.proc.exitCode, null, 'the agent must still be running');
  });

  it("refuses a second task with a running task's id", async () => {
    bystander.send({ t: 'run', task: 'twin', command: 'sleep 2', env: {}, timeoutMs: 0 });
    assert.equal((await bystander.next()).t, 'started');
    bystander.send({ t: 'run', task: 'twin', command: 'echo again', env: {}, timeoutMs: 0 });
    const m = await bystander.next();
    assert.equal(m.t === 'refused' && m.code, ErrorCode.DuplicateTask);
    bystander.send({ t: 'cancel', task: 'twin' });
    const end = await bystander.next();
    assert.equal(end.t === 'exit' && end.outcome, 'cancelled');
  });
});
