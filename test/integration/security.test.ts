import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { StartedAgent } from '../helpers/agentProcess';
import { AGENT_BIN, newKeyFile, runCli, runOn, startAgent, tempDir } from '../helpers/agentProcess';
import { dispatcherHello, fakeAgent, rawDial } from '../helpers/rawPeer';
import type { ClusterKey } from '../../shared/clusterKey';
import { ErrorCode } from '../../shared/errors';
import { CloseCode, PROTOCOL_VERSION } from '../../shared/protocol';

describe('keys, versions and policy @integration', function () {
  this.timeout(60_000);
  const dir = tempDir();
  let keyFile: string;
  let key: ClusterKey;
  let agent: StartedAgent;

  before(async () => {
    ({ path: keyFile, key } = newKeyFile(dir.path));
    agent = await startAgent({
      keyFile,
      name: 'guarded',
      args: ['--deny', 'shutdown', '--allow', '^echo ', '--allow', '^touch '],
    });
  });
  after(async () => {
    await agent?.stop();
    dir.cleanup();
  });

  it('fails fast with a clear message when the key is wrong, and the agent logs it', async () => {
    const other = newKeyFile(dir.path, 'other-key');
    const started = Date.now();
    const r = await runOn(agent.address, other.path, ['--', 'echo hi']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /E_WRONG_KEY.*different cluster key/);
    assert.ok(Date.now() - started < 10_000, 'a wrong key must not hang');
    assert.ok(
      agent.logs.some(
        (l) => typeof l.msg === 'string' && l.msg.includes('does not hold this cluster key'),
      ),
      'the agent should log the rejected handshake',
    );
    const list = await runCli([
      'agents',
      '--agent',
      agent.address,
      '--key-file',
      other.path,
      '--no-mdns',
      '--json',
    ]);
    const doc = JSON.parse(list.stdout) as {
      agents: Array<{ status: string; lastError: { code: string } }>;
    };
    assert.equal(doc.agents[0]?.status, 'wrong_key');
    assert.equal(doc.agents[0]?.lastError.code, ErrorCode.WrongKey);
  });

  it('says what is wrong when no agent can be reached', async () => {
    const r = await runOn('127.0.0.1:9', keyFile, ['--', 'echo hi']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /E_NO_AGENTS.*127\.0\.0\.1:9.*ECONNREFUSED/);
  });

  it('answers a dispatcher of another protocol version with a coded error', async () => {
    const peer = await rawDial(agent.port, key);
    peer.send(dispatcherHello({ protocol: PROTOCOL_VERSION + 98 }));
    const reply = await peer.next();
    assert.equal(reply.t, 'error');
    assert.equal(reply.t === 'error' && reply.code, ErrorCode.ProtocolVersion);
    assert.equal((await peer.closed).code, CloseCode.VersionMismatch);
  });

  it('reports an agent of another protocol version as a version mismatch', async () => {
    const fake = await fakeAgent(key, { protocol: PROTOCOL_VERSION + 1 });
    try {
      const list = await runCli([
        'agents',
        '--agent',
        `127.0.0.1:${fake.port}`,
        '--key-file',
        keyFile,
        '--no-mdns',
        '--json',
      ]);
      const doc = JSON.parse(list.stdout) as {
        agents: Array<{ status: string; lastError: { message: string } }>;
      };
      assert.equal(doc.agents[0]?.status, 'version_mismatch');
      assert.match(doc.agents[0]?.lastError.message ?? '', /protocol/);
      const r = await runOn(`127.0.0.1:${fake.port}`, keyFile, ['--', 'echo hi']);
      assert.equal(r.code, 125);
      assert.match(
        r.stderr,
        /runs Octask test \(protocol \d+\); this dispatcher runs Octask .* \(protocol \d+\)/,
      );
    } finally {
      fake.close();
    }
  });

  it('refuses a command its policy denies, naming the rule, and never runs it', async () => {
    const marker = join(dir.path, 'should-not-exist');
    const r = await runOn(agent.address, keyFile, ['--', `touch ${marker}; shutdown -h now`]);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /E_POLICY_REFUSED.*--deny "shutdown"/);
    assert.equal(existsSync(marker), false);
    const r2 = await runOn(agent.address, keyFile, ['--', `ls ${dir.path}`]);
    assert.equal(r2.code, 125);
    assert.match(r2.stderr, /none of the agent's --allow rules/);
    const ok = await runOn(agent.address, keyFile, ['--', 'echo allowed']);
    assert.equal(ok.stdout, 'allowed\n');
  });

  it('writes an audit line for every task, refused ones included', async () => {
    const file = readFileSync(join(agent.workdir, 'audit.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      file.some(
        (l) => l.outcome === 'refused' && typeof l.time === 'string' && typeof l.task === 'string',
      ),
    );
  });

  it('refuses to listen in the clear beyond loopback', () => {
    const r = spawnSync(
      process.execPath,
      [
        AGENT_BIN,
        '--insecure',
        '--bind',
        '0.0.0.0',
        '--port',
        '0',
        '--no-mdns',
        '--key-file',
        keyFile,
      ],
      {
        encoding: 'utf8',
        timeout: 10_000,
      },
    );
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--insecure .* only allowed with a loopback --bind/);
  });

  it('serves plain WebSocket on loopback with --insecure, reached as ws://', async () => {
    const plain = await startAgent({ keyFile, name: 'plain', args: ['--insecure'] });
    try {
      const r = await runOn(`ws://${plain.address}`, keyFile, ['--', 'echo clear']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'clear\n');
    } finally {
      await plain.stop();
    }
  });
});
