import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { generateKey } from '../../shared/clusterKey';
import { dial } from './transport';

describe('dial', () => {
  it('sends frames with an all-zero mask, so neither side XORs the payload @integration', async () => {
    const raw: Buffer[] = [];
    const wss = new WebSocketServer({ noServer: true });
    const server = createServer();
    server.on('upgrade', (req, socket, head) => {
      // What the dispatcher writes after the handshake, byte for byte.
      wss.handleUpgrade(req, socket, head, () => socket.on('data', (d: Buffer) => raw.push(d)));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const ws = await dial({ host: '127.0.0.1', port, secure: false }, generateKey(), 2000);
    try {
      ws.send(Buffer.from('hello'));
      for (let i = 0; i < 100 && Buffer.concat(raw).length < 11; i++)
        await new Promise((r) => setTimeout(r, 10));
      const frame = Buffer.concat(raw);
      assert.equal(frame[0], 0x82, 'a final binary frame');
      assert.equal(frame[1], 0x80 | 5, 'masked (as RFC 6455 asks of a client), 5 bytes');
      assert.deepEqual([...frame.subarray(2, 6)], [0, 0, 0, 0]);
      assert.equal(frame.subarray(6, 11).toString(), 'hello');
    } finally {
      ws.terminate();
      wss.close();
      server.close();
    }
  });
});
