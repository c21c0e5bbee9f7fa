import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { sha256Hex } from './sha256';

describe('sha256Hex', () => {
  it('is the SHA-256 a Hash object gives, for empty, small and large data', () => {
    for (const data of [Buffer.alloc(0), Buffer.from('hello\n'), Buffer.alloc(3 << 20, 7)])
      assert.equal(sha256Hex(data), createHash('sha256').update(data).digest('hex'));
    assert.equal(
      sha256Hex(Buffer.alloc(0)),
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });
});
