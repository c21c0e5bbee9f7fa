import { createServer as createHttpServer } from 'node:http';
import type { Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createServer as createTcpServer } from 'node:net';
import { WebSocketServer } from 'ws';
import type { WsLike } from '../shared/frameConnection';
import type { Logger } from '../shared/logger';
import { MAX_FRAME_BYTES } from '../shared/protocol';
import type { ServerKey } from '../shared/tlsPsk';
import { isWrongKeyError, pskServerOptions } from '../shared/tlsPsk';
import type { PreAuthLimits } from './preAuthGuard';
import { releaseMemory } from './memory';
import type { HandshakeFailure } from './preAuthGuard';
import { DEFAULT_PRE_AUTH_LIMITS, PreAuthGuard } from './preAuthGuard';

/** The agent's only contact with `ws`: a listening socket that hands over connections. */
export interface AgentServer {
  readonly port: number;
  readonly secure: boolean;
  /** Connections that have not finished TLS and the WebSocket upgrade. */
  readonly pending: number;
  /** Stops listening; open connections are left to their owners. */
  close(): Promise<void>;
}

export interface AgentServerOptions {
  bind: string;
  port: number;
  /** null: plain WebSocket (only allowed on loopback; checked by the caller). */
  key: ServerKey | null;
  logger: Logger;
  onConnection(ws: WsLike, peer: string): void;
  /** Overrides for tests; the defaults suit a LAN. */
  preAuth?: Partial<PreAuthLimits>;
}

/** How long no connection is dropped or refused before a flood counts as over. */
const FLOOD_CALM_MS = 3000;
/** Unused heap above which another collection is worth trying, and how many to try. */
const SPARE_HEAP_BYTES = 16 * 1048576;
const MAX_RELEASE_ROUNDS = 8;

/** A TCP connection that has not yet proved it holds the key. */
interface PendingConnection {
  socket: Socket;
  /** keyOf(socket), taken at accept: a closed socket forgets its address. */
  key: string;
  address: string;
  deadline: NodeJS.Timeout;
  /** Whether its failure was counted already (a socket we drop also closes). */
  settled: boolean;
}

export function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\.\d+\.\d+\.\d+$/.test(address);
}

export async function listen(options: AgentServerOptions): Promise<AgentServer> {
  const { key, logger } = options;
  const limits = { ...DEFAULT_PRE_AUTH_LIMITS, ...options.preAuth };
  const guard = new PreAuthGuard(limits, logger);
  const server: Server = key ? createHttpsServer(pskServerOptions(key)) : createHttpServer();
  // Insertion order is age order: the first entry is the oldest handshake.
  const pending = new Map<string, PendingConnection>();
  /** When connections were last dropped or refused: a flood; 0 once it is over. */
  let floodAt = 0;
  const fail = (entry: PendingConnection, why: HandshakeFailure, details = {}): void => {
    if (entry.settled) return;
    if (why === 'dropped' || why === 'timeout') floodAt = Date.now();
    entry.settled = true;
    clearTimeout(entry.deadline);
    pending.delete(entry.key);
    guard.failed(entry.address, why, details);
  };
  // TCP is accepted here and handed to the TLS server only once admitted, so
  // a backed-off address costs an accept and a close, no TLS state.
  const front = createTcpServer((socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    if (!guard.admit(address)) {
      floodAt = Date.now();
      socket.destroy();
      return;
    }
    // Dropping the oldest, not the newest: an idle flood then cannot hold
    // every slot, while a real handshake (milliseconds) is rarely the oldest.
    // A peer that has sent nothing yet goes first: a real client speaks at once.
    if (pending.size >= limits.maxPending) {
      const victim = oldestSilent(pending.values()) ?? pending.values().next().value;
      if (victim) {
        fail(victim, 'dropped');
        victim.socket.destroy();
      }
    }
    const entry: PendingConnection = {
      socket,
      key: keyOf(socket),
      address,
      settled: false,
      deadline: setTimeout(() => {
        fail(entry, 'timeout', { ms: limits.handshakeMs });
        socket.destroy();
      }, limits.handshakeMs),
    };
    pending.set(entry.key, entry);
    socket.once('close', () => fail(entry, 'closed'));
    // TLS state is made only once the peer speaks (a real client sends its
    // hello at once); Node's TLS socket takes over the bytes read so far.
    socket.once('readable', () => {
      if (!entry.settled) server.emit('connection', socket);
    });
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: Socket) => {
    const entry = pending.get(keyOf(socket));
    const details = { keyId: key?.id, tls: err.code, err: err.message };
    if (entry) fail(entry, isWrongKeyError(err) ? 'wrong_key' : 'tls', details);
  });
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
    // The upgrade is done: the peer holds the key and its slot is free.
    const entry = pending.get(keyOf(req.socket));
    if (entry) {
      entry.settled = true;
      clearTimeout(entry.deadline);
      pending.delete(entry.key);
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    options.onConnection(ws, `${address}:${req.socket.remotePort ?? 0}`);
  });
  // ws repeats the server's errors; one from listen() itself is the caller's to report.
  let listening = false;
  wss.on('error', (err) => {
    if (listening) logger.error('websocket server error', { err });
  });
  const flusher = setInterval(() => guard.flush(), limits.windowMs);
  flusher.unref();
  // A few quiet seconds after a flood, the heap it grew is given back. V8
  // shrinks its spaces only at some collections, so this collects every few
  // seconds until the heap holds little unused room (or gives up).
  let release: { rounds: number; first: NodeJS.MemoryUsage } | undefined;
  const calm = setInterval(() => {
    if (floodAt === 0 || Date.now() - floodAt < FLOOD_CALM_MS || pending.size > 0) return;
    const before = process.memoryUsage();
    if (!releaseMemory()) {
      floodAt = 0;
      return;
    }
    release ??= { rounds: 0, first: before };
    const now = process.memoryUsage();
    if (++release.rounds < MAX_RELEASE_ROUNDS && now.heapTotal - now.heapUsed > SPARE_HEAP_BYTES)
      return;
    const { first } = release;
    floodAt = 0;
    release = undefined;
    logger.info('a connection flood is over; memory released', {
      heapMiB: [first.heapTotal, now.heapTotal].map(toMiB),
      rssMiB: [first.rss, now.rss].map(toMiB),
    });
  }, 3000);
  calm.unref();

  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    // A deeper accept queue than Node's 511, so a burst of connections does
    // not make the kernel drop a real client's SYN (a 1 s retransmit).
    front.listen({ port: options.port, host: options.bind, backlog: 2048 }, () => {
      front.off('error', reject);
      listening = true;
      resolve();
    });
  });
  front.on('error', (err) => logger.error('server error', { err }));
  server.on('error', (err) => logger.error('server error', { err }));
  return {
    port: (front.address() as AddressInfo).port,
    secure: key !== null,
    get pending() {
      return pending.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(flusher);
        clearInterval(calm);
        guard.flush();
        for (const entry of [...pending.values()]) {
          clearTimeout(entry.deadline);
          entry.socket.destroy();
        }
        wss.close();
        // The TLS server never listened; it only closes the connections it holds.
        server.close(() => undefined);
        server.closeIdleConnections?.();
        front.close(() => resolve());
      }),
  };
}

/** The TCP connection's own name: the raw socket and the TLS socket over it share it. */
function keyOf(socket: { remoteAddress?: string; remotePort?: number }): string {
  return `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? 0}`;
}

function toMiB(bytes: number): number {
  return Math.round(bytes / 1048576);
}

/** The oldest connection that has not sent a byte (an idle flood's), if any. */
function oldestSilent(entries: Iterable<PendingConnection>): PendingConnection | undefined {
  for (const entry of entries) if (entry.socket.bytesRead === 0) return entry;
  return undefined;
}
