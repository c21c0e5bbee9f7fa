import assert from 'node:assert/strict';
import { formatKey, generateKey, keyIdOf, parseKey, pasteLine } from './clusterKey';
import { ErrorCode, OctaskError } from './errors';

describe('cluster key', () => {
  it('formats as 64 hex digits and parses back to the same key', () => {
    const key = generateKey();
    const text = formatKey(key);
    assert.match(text, /^[0-9a-f]{64}$/);
    const back = parseKey(`  ${text}\n`);
    assert.ok(back.secret.equals(key.secret));
    assert.equal(back.id, key.id);
  });

  it('derives a stable id that differs between keys and does not contain the key', () => {
    const a = generateKey();
    const b = generateKey();
    assert.equal(keyIdOf(a.secret), a.id);
    assert.notEqual(a.id, b.id);
    assert.ok(!formatKey(a).includes(a.id));
  });

  it('rejects text that is not a key, saying where it came from', () => {
    for (const bad of ['', 'abc', 'z'.repeat(64), 'a'.repeat(63), 'a'.repeat(65)]) {
      assert.throws(
        () => parseKey(bad, 'key file /x'),
        (e: unknown) =>
          e instanceof OctaskError && e.code === ErrorCode.BadKeyFile && e.message.includes('/x'),
      );
    }
  });

  it('offers a paste line that writes the key with private permissions', () => {
    const key = generateKey();
    const line = pasteLine(key);
    assert.ok(line.includes(formatKey(key)));
    assert.ok(line.includes('umask 077'));
  });
});
