import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { ManifestEntry } from '../shared/protocol';
import { envFingerprint, fromColumns, readFrames, toColumns, writeFrame } from './watcherSocket';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

describe('watcher frames', () => {
  it('carry manifest entries as columns and back, links and empty files included', () => {
    const entries: ManifestEntry[] = [
      { path: 'a.txt', size: 3, mode: 0o644, hash: sha('a') },
      { path: 'bin/run', size: 0, mode: 0o755, hash: sha('') },
      { path: 'latest', link: 'bin/run' },
      { path: 'z/ü name.md', size: 1 << 20, mode: 0o600, hash: sha('z') },
    ];
    assert.deepEqual(fromColumns(toColumns(entries)), entries);
    assert.deepEqual(fromColumns(toColumns([])), []);
  });

  it('refuse columns that disagree', () => {
    const c = toColumns([{ path: 'a', size: 1, mode: 0o644, hash: sha('a') }]);
    assert.throws(() => fromColumns({ ...c, sizes: [] }), /different lengths/);
    assert.throws(() => fromColumns({ ...c, sizes: [-1] }), /too few link targets/);
  });

  it('arrive whole however the socket cuts them, several in a row', async () => {
    const big = { data: 'x'.repeat(3 * 1024 * 1024) };
    const got: unknown[] = [];
    const server = createServer((socket) =>
      readFrames(socket, (v) => {
        got.push(v);
        if (got.length === 3) socket.end();
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    writeFrame(client, { n: 1 });
    writeFrame(client, big);
    writeFrame(client, { n: 3 });
    await new Promise((r) => client.once('close', r));
    server.close();
    assert.deepEqual(got, [{ n: 1 }, big, { n: 3 }]);
  });

  it('name the git settings a watcher serves, not the rest of the environment', () => {
    const base = { HOME: '/home/me', PATH: '/bin', GIT_DIR: undefined };
    assert.equal(envFingerprint(base), envFingerprint({ ...base, PATH: '/usr/bin', TERM: 'x' }));
    assert.notEqual(
      envFingerprint(base),
      envFingerprint({ ...base, GIT_CONFIG_GLOBAL: '/dev/null' }),
    );
    assert.notEqual(envFingerprint(base), envFingerprint({ ...base, XDG_CONFIG_HOME: '/x' }));
  });
});
