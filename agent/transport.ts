import { createServer as createHttpServer } from 'node:http';
import type { Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import type { ClusterKey } from '../shared/clusterKey';
import type { WsLike } from '../shared/frameConnection';
import type { Logger } from '../shared/logger';
import { MAX_FRAME_BYTES } from '../shared/protocol';
import { isWrongKeyError, pskServerOptions } from '../shared/tlsPsk';

/** The agent's only contact with `ws`: a listening socket that hands over connections. */
export interface AgentServer {
  readonly port: number;
  readonly secure: boolean;
  /** Stops listening; open connections are left to their owners. */
  close(): Promise<void>;
}

export interface AgentServerOptions {
  bind: string;
  port: number;
  /** null: plain WebSocket (only allowed on loopback; checked by the caller). */
  key: ClusterKey | null;
  logger: Logger;
  onConnection(ws: WsLike, peer: string): void;
}

export function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\.\d+\.\d+\.\d+$/.test(address);
}

export async function listen(options: AgentServerOptions): Promise<AgentServer> {
  const { key, logger } = options;
  const server: Server = key ? createHttpsServer(pskServerOptions(key)) : createHttpServer();
  server.on(
    'tlsClientError',
    (err: Error & { code?: string }, socket: { remoteAddress?: string }) => {
      const peer = socket.remoteAddress ?? 'unknown';
      if (isWrongKeyError(err)) {
        logger.warn('rejected a connection: the peer does not hold this cluster key', {
          peer,
          keyId: key?.id,
          tls: err.code,
        });
      } else {
        logger.info('TLS handshake failed', { peer, tls: err.code, err: err.message });
      }
    },
  );
  // Anything but a WebSocket upgrade gets a short answer instead of a hang.
  server.on('request', (_req, res) => {
    res
      .writeHead(426, { 'content-type': 'text/plain' })
      .end('octask-agent speaks WebSocket only\n');
  });
  const wss = new WebSocketServer({
    server,
    maxPayload: MAX_FRAME_BYTES,
    perMessageDeflate: false,
  });
  wss.on('connection', (ws, req) => {
    const address = req.socket.remoteAddress ?? 'unknown';
    options.onConnection(ws, `${address}:${req.socket.remotePort ?? 0}`);
  });
  // ws repeats the server's errors; one from listen() itself is the caller's to report.
  let listening = false;
  wss.on('error', (err) => {
    if (listening) logger.error('websocket server error', { err });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.bind, () => {
      server.off('error', reject);
      listening = true;
      resolve();
    });
  });
  server.on('error', (err) => logger.error('server error', { err }));
  return {
    port: (server.address() as AddressInfo).port,
    secure: key !== null,
    close: () =>
      new Promise<void>((resolve) => {
        wss.close();
        server.close(() => resolve());
        server.closeIdleConnections?.();
      }),
  };
}
