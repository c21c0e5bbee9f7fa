import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import type { StartedAgent } from '../helpers/agentProcess';
import { AGENT_BIN, newKeyFile, runCli, runOn, startAgent, tempDir } from '../helpers/agentProcess';
import { dispatcherHello, fakeAgent, rawDial } from '../helpers/rawPeer';
import type { AgentKey, ClusterKey } from '../../shared/clusterKey';
import { formatKey, keyFromSecret, parseAgentKeyFile } from '../../shared/clusterKey';
import { PSK_CIPHERS, TLS_VERSION } from '../../shared/tlsPsk';

describe('per-agent keys: pairing, and what a paired device cannot do @integration', function () {
  this.timeout(90_000);
  const dir = tempDir();
  let clusterFile: string;
  let cluster: ClusterKey;
  const agents: StartedAgent[] = [];
  let alpha: StartedAgent;
  let beta: StartedAgent;
  let alphaKeyFile: string;
  let alphaKey: AgentKey;

  /** Runs `octask key --pair NAME`, then its printed line in a shell on the "device" (its own HOME). */
  function pair(name: string): { path: string; key: AgentKey; stdout: string } {
    const r = runCliSync(['key', '--pair', name, '--key-file', clusterFile]);
    assert.equal(r.status, 0, r.stderr);
    const line = /^ {2}(mkdir -p ~\/\.config\/octask .*)$/m.exec(r.stdout)?.[1];
    assert.ok(line, `no line to paste in: ${r.stdout}`);
    const home = join(dir.path, `home-${name}`);
    mkdirSync(home, { recursive: true });
    execFileSync('sh', ['-c', line], { env: { ...process.env, HOME: home } });
    const path = join(home, '.config', 'octask', 'key');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const file = parseAgentKeyFile(readFileSync(path, 'utf8'));
    assert.equal(file.kind, 'paired');
    return { path, key: file.key as AgentKey, stdout: r.stdout };
  }
  const runCliSync = (args: string[]) =>
    spawnSync(process.execPath, [join(AGENT_BIN, '..', 'octask.js'), ...args], {
      encoding: 'utf8',
    });
  const start = async (name: string, keyFile: string, args: string[] = []) => {
    const a = await startAgent({ keyFile, name, args });
    agents.push(a);
    return a;
  };
  const run = (address: string, keyFile = clusterFile) =>
    runOn(address, keyFile, ['--', 'echo served']);

  /** A TLS-PSK handshake with the given identity and secret; resolves whether it completed. */
  const handshake = (port: number, identity: string, psk: Buffer): Promise<boolean> =>
    new Promise((resolve) => {
      const s = tlsConnect({
        host: '127.0.0.1',
        port,
        ciphers: PSK_CIPHERS,
        minVersion: TLS_VERSION,
        maxVersion: TLS_VERSION,
        checkServerIdentity: () => undefined,
        pskCallback: () => ({ identity, psk }),
      });
      s.once('secureConnect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });

  before(async () => {
    ({ path: clusterFile, key: cluster } = newKeyFile(dir.path, 'cluster-key'));
    const a = pair('alpha');
    alphaKeyFile = a.path;
    alphaKey = a.key;
    alpha = await start('alpha', alphaKeyFile);
    beta = await start('beta', pair('beta').path);
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    dir.cleanup();
  });

  it('octask key --pair prints one line that gives the device its own key, not the cluster key', () => {
    const { stdout, key } = pair('gamma');
    assert.equal(stdout.includes(formatKey(cluster)), false);
    assert.equal(key.clusterId, cluster.id);
    assert.match(stdout, /it will be named gamma/);
  });

  it('a dispatcher with the cluster key runs on paired agents, which advertise the cluster', async () => {
    for (const a of [alpha, beta]) {
      const r = await run(a.address);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /served/);
    }
    const listening = alpha.logs.find((l) => l.msg === 'listening');
    assert.equal(listening?.keyId, cluster.id);
    assert.equal(listening?.pairing, 'alpha');
  });

  it("an agent's key used as a dispatcher's reaches no other agent", async () => {
    // The CLI will not take it as a cluster key.
    const r = await run(beta.address, alphaKeyFile);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /holds an agent's key \(paired as alpha\)/);
    // Nor does it open a TLS session with beta, whatever identity it claims.
    const stolen = keyFromSecret(alphaKey.secret);
    await assert.rejects(rawDial(beta.port, stolen));
    assert.equal(await handshake(beta.port, 'octask-pair:beta', alphaKey.secret), false);
    assert.equal(await handshake(beta.port, 'octask-pair:alpha', alphaKey.secret), false);
    assert.equal(await handshake(beta.port, stolen.id, alphaKey.secret), false);
    // The control: the right derived key does complete it.
    assert.equal(await handshake(alpha.port, 'octask-pair:alpha', alphaKey.secret), true);
    const peer = await rawDial(beta.port, cluster);
    peer.send(dispatcherHello());
    assert.equal((await peer.next()).t, 'hello');
    peer.ws.close();
  });

  it('an agent key under the wrong pairing id fails with E_WRONG_KEY, saying how to re-pair', async () => {
    const forged = join(dir.path, 'forged-key');
    writeFileSync(forged, readFileSync(alphaKeyFile, 'utf8').replace(' alpha ', ' delta '), {
      mode: 0o600,
    });
    const delta = await start('delta', forged);
    const r = await run(delta.address);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /E_WRONG_KEY.*paired as delta.*octask key --pair delta/);
  });

  it('a paired agent passing for another is refused by the dispatcher', async () => {
    const fake = await fakeAgent(alphaKey, { name: 'beta' });
    try {
      const list = await runCli([
        'agents',
        '--agent',
        `127.0.0.1:${fake.port}`,
        '--key-file',
        clusterFile,
        '--no-mdns',
        '--json',
      ]);
      const doc = JSON.parse(list.stdout) as {
        agents: Array<{ status: string; lastError?: { code: string; message: string } }>;
      };
      assert.equal(doc.agents[0]?.status, 'wrong_key');
      assert.match(
        doc.agents[0]?.lastError?.message ?? '',
        /paired as alpha but calls itself beta/,
      );
    } finally {
      fake.close();
    }
    await assert.rejects(
      start('not-alpha', alphaKeyFile),
      /paired as alpha, so that is its name; drop --name not-alpha/,
    );
  });

  it('an agent holding the plain cluster key still works, and says how to re-pair', async () => {
    const legacyFile = join(dir.path, 'legacy-key');
    copyFileSync(clusterFile, legacyFile);
    const legacy = await start('legacy', legacyFile);
    const r = await run(legacy.address);
    assert.equal(r.code, 0, r.stderr);
    const warning = legacy.logs.find((l) => /holds the cluster key itself/.test(String(l.msg)));
    assert.match(String(warning?.msg), /octask key --pair legacy/);
    const shown = spawnSync(process.execPath, [AGENT_BIN, 'key', '--key-file', legacyFile], {
      encoding: 'utf8',
    });
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, /holds the cluster key itself.*\n.*reach every other agent/);
    assert.match(shown.stdout, /octask key --pair NAME/);
    assert.equal(shown.stdout.includes(formatKey(cluster)), false, 'no key material printed');
  });

  it('octask-agent key shows the pairing and how to pair again, printing no key material', () => {
    const shown = spawnSync(process.execPath, [AGENT_BIN, 'key', '--key-file', alphaKeyFile], {
      encoding: 'utf8',
    });
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, /paired as alpha \(agent key id [0-9a-f]{16}, cluster key id /);
    assert.match(shown.stdout, /octask key --pair alpha/);
    assert.doesNotMatch(shown.stdout, /[0-9a-f]{64}/);
  });

  it('refuses key files open to group or others, on both sides, with the chmod that fixes it', async () => {
    const open = join(dir.path, 'open-agent-key');
    copyFileSync(alphaKeyFile, open);
    chmodSync(open, 0o644);
    await assert.rejects(start('alpha', open), new RegExp(`mode 0644.*chmod 600 ${open}`));
    const openCluster = join(dir.path, 'open-cluster-key');
    copyFileSync(clusterFile, openCluster);
    chmodSync(openCluster, 0o640);
    const r = await run(alpha.address, openCluster);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`E_BAD_KEY_FILE.*mode 0640.*chmod 600 ${openCluster}`));
  });
});
