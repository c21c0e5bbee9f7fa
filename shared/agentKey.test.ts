import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  deriveAgentKey,
  formatAgentKey,
  formatKey,
  generateKey,
  keyFileModeProblem,
  pairLine,
  parseAgentKeyFile,
  parseKey,
} from './clusterKey';
import { OctaskError } from './errors';
import { pairingOfHint, pskClientOptions, pskServerOptions } from './tlsPsk';

describe('agent keys derived from the cluster key', () => {
  const cluster = generateKey();

  it('derives HMAC-SHA256(cluster key, "octask-agent-key:" + pairing), one per pairing', () => {
    const a = deriveAgentKey(cluster, 'pi-kitchen');
    const expected = createHmac('sha256', cluster.secret)
      .update('octask-agent-key:pi-kitchen')
      .digest();
    assert.ok(a.secret.equals(expected));
    assert.ok(deriveAgentKey(cluster, 'pi-kitchen').secret.equals(a.secret), 'stable');
    assert.equal(deriveAgentKey(cluster, 'pi-garage').secret.equals(a.secret), false);
    assert.equal(deriveAgentKey(generateKey(), 'pi-kitchen').secret.equals(a.secret), false);
    assert.equal(a.clusterId, cluster.id);
    assert.notEqual(a.id, cluster.id);
  });

  it('refuses a pairing name that could not be an agent name', () => {
    for (const bad of ['', 'a b', 'x'.repeat(64), 'a:b', "a'b"])
      assert.throws(() => deriveAgentKey(cluster, bad), OctaskError);
  });

  it('writes one line that parses back, and a paste line holding that line only', () => {
    const a = deriveAgentKey(cluster, 'phone');
    const line = formatAgentKey(a);
    assert.match(line, /^octask-pair phone [0-9a-f]{16} [0-9a-f]{64}$/);
    const back = parseAgentKeyFile(`${line}\n`);
    assert.equal(back.kind, 'paired');
    assert.ok(back.kind === 'paired' && back.key.secret.equals(a.secret));
    assert.equal(back.kind === 'paired' && back.key.pairing, 'phone');
    const paste = pairLine(a);
    assert.ok(paste.includes(line));
    assert.equal(paste.includes(formatKey(cluster)), false, 'the cluster key is not in it');
  });

  it('still reads an agent file holding the plain cluster key', () => {
    const file = parseAgentKeyFile(formatKey(cluster));
    assert.equal(file.kind, 'cluster');
    assert.equal(file.key.id, cluster.id);
  });

  it('refuses an agent key where a dispatcher needs the cluster key, saying so', () => {
    const line = formatAgentKey(deriveAgentKey(cluster, 'phone'));
    assert.throws(
      () => parseKey(line, 'key file k'),
      (err: unknown) =>
        err instanceof OctaskError &&
        err.code === 'E_BAD_KEY_FILE' &&
        /holds an agent's key \(paired as phone\).*needs the cluster key/.test(err.message),
    );
  });

  it('refuses key files open to group or others, with the chmod', () => {
    assert.equal(keyFileModeProblem('/k', 0o100600, 'linux'), undefined);
    assert.equal(keyFileModeProblem('/k', 0o100400, 'linux'), undefined);
    assert.match(keyFileModeProblem('/k', 0o100644, 'linux') ?? '', /mode 0644.*chmod 600 \/k$/);
    assert.match(keyFileModeProblem('/k', 0o100620, 'darwin') ?? '', /chmod 600/);
    assert.equal(keyFileModeProblem('/k', 0o100666, 'win32'), undefined);
  });

  it("names a paired agent's pairing in its identity hint, and dispatchers derive from it", () => {
    const a = deriveAgentKey(cluster, 'pi');
    const server = pskServerOptions(a);
    assert.equal(server.pskIdentityHint, 'octask-pair:pi');
    assert.equal(pairingOfHint('octask-pair:pi'), 'pi');
    assert.equal(pairingOfHint('octask-pair:../x'), undefined);
    assert.equal(pairingOfHint(null), undefined);
    let seen: string | undefined = 'unset';
    const answer = pskClientOptions(cluster, (p) => (seen = p)).pskCallback('octask-pair:pi');
    assert.equal(seen, 'pi');
    assert.ok(answer?.psk.equals(a.secret));
    assert.ok(server.pskCallback(null, answer?.identity ?? '')?.equals(a.secret));
    assert.equal(
      server.pskCallback(null, cluster.id),
      null,
      'the cluster identity is not accepted',
    );
    const legacy = pskClientOptions(cluster).pskCallback(null);
    assert.ok(legacy?.psk.equals(cluster.secret));
    assert.equal(legacy?.identity, cluster.id);
  });
});
