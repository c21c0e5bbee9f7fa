import { randomBytes } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import type { ClusterKey } from '../../shared/clusterKey';
import { decodeMessage, encodeMessage } from '../../shared/codec';
import type { AgentLoad, HelloMessage, Message } from '../../shared/protocol';
import { PROTOCOL_VERSION } from '../../shared/protocol';
import type { ServerKey } from '../../shared/tlsPsk';
import { pskClientOptions, pskServerOptions } from '../../shared/tlsPsk';

/** A hand-driven peer over a real TLS-PSK WebSocket, for sending what a real dispatcher never would. */
export interface RawPeer {
  ws: WebSocket;
  send(message: Message): void;
  /** The next decoded frame (`load` reports excepted: they come whenever the agent's counts change). */
  next(): Promise<Message>;
  /** Every `load` report the agent sent, in order. */
  loads: AgentLoad[];
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number; reason: string }>;
}

export function dispatcherHello(over: Partial<HelloMessage> = {}): HelloMessage {
  return {
    t: 'hello',
    protocol: PROTOCOL_VERSION,
    role: 'dispatcher',
    // Each peer is its own dispatcher: agents keep tasks per dispatcher id.
    id: `raw-${randomBytes(4).toString('hex')}`,
    name: 'raw',
    version: 'test',
    os: 'linux',
    arch: 'x64',
    cpus: 1,
    memory: 1,
    maxJobs: 0,
    running: 0,
    tags: [],
    ...over,
  };
}

export function rawDial(port: number, key: ClusterKey): Promise<RawPeer> {
  const ws = new WebSocket(
    `wss://127.0.0.1:${port}/`,
    pskClientOptions(key) as unknown as WebSocket.ClientOptions,
  );
  const inbox: Message[] = [];
  const waiters: Array<(m: Message) => void> = [];
  const loads: AgentLoad[] = [];
  ws.on('message', (data: Buffer) => {
    const m = decodeMessage(data);
    if (m.t === 'load') {
      loads.push(m.load);
      return;
    }
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () =>
      resolve({
        ws,
        loads,
        send: (m) => ws.send(encodeMessage(m)),
        next: () => {
          const m = inbox.shift();
          if (m) return Promise.resolve(m);
          return new Promise((res, rej) => {
            waiters.push(res);
            void closed.then((c) =>
              rej(new Error(`closed (${c.code} ${c.reason}) while waiting for a frame`)),
            );
          });
        },
        closed,
      }),
    );
  });
}

/** An "agent" that completes the TLS handshake and answers hello with whatever the test says. */
export async function fakeAgent(
  key: ServerKey,
  hello: Partial<HelloMessage>,
): Promise<{ port: number; close(): void }> {
  const server = createServer(pskServerOptions(key));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.on('message', () => {
      const reply: HelloMessage = {
        ...dispatcherHello(),
        role: 'agent',
        id: 'fake',
        name: 'fake',
        maxJobs: 1,
        ...hello,
      };
      ws.send(encodeMessage(reply));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.close();
    },
  };
}
