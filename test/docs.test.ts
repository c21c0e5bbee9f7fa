import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode } from '../shared/errors';
import { PROTOCOL_VERSION } from '../shared/protocol';
import { RpcMethod } from '../shared/rpc';

/**
 * docs/protocol.md must say what the code declares: every message type,
 * error code and JSON-RPC method. Adding one without documenting it fails
 * here (as rust-analyzer's tidy checks keep its docs in step).
 */
describe('docs/protocol.md follows the code', () => {
  const root = join(__dirname, '..', '..');
  const doc = readFileSync(join(root, 'docs', 'protocol.md'), 'utf8');
  const source = readFileSync(join(root, 'shared', 'protocol.ts'), 'utf8');

  it('names every message type', () => {
    const types = [...source.matchAll(/^\s+t: '([A-Za-z]+)';$/gm)].map((m) => m[1] as string);
    assert.ok(types.length >= 20, `found only ${types.length} message types in shared/protocol.ts`);
    const missing = types.filter((t) => !doc.includes(`\`${t}\``));
    assert.deepEqual(missing, [], `message types missing from docs/protocol.md`);
  });

  it('lists every error code and every JSON-RPC method', () => {
    const missingCodes = Object.values(ErrorCode).filter((c) => !doc.includes(`\`${c}\``));
    assert.deepEqual(missingCodes, [], 'error codes missing from docs/protocol.md');
    const missingMethods = Object.values(RpcMethod).filter((m) => !doc.includes(`\`${m}\``));
    assert.deepEqual(missingMethods, [], 'JSON-RPC methods missing from docs/protocol.md');
  });

  it('states the protocol version the code speaks', () => {
    assert.match(doc, new RegExp(`Protocol version \\*\\*${PROTOCOL_VERSION}\\*\\*`));
  });
});
