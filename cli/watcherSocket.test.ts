import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { envFingerprint, readFrames, writeFrame } from './watcherSocket';

describe('watcher frames', () => {
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
