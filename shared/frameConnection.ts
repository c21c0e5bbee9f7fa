import { decodeMessage, encodeMessage } from './codec';
import { ErrorCode, isOctaskError } from './errors';
import type { Message } from './protocol';
import { CloseCode, HEARTBEAT_MISSES, HEARTBEAT_MS } from './protocol';

/**
 * The part of a `ws` WebSocket this module needs. Declared structurally so
 * the protocol module does not import `ws`; each program's transport file
 * hands in the real socket.
 */
export interface WsLike {
  readonly bufferedAmount: number;
  send(data: Buffer, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  ping(): void;
  pause(): void;
  resume(): void;
  on(event: 'message', cb: (data: Buffer, isBinary: boolean) => void): unknown;
  on(event: 'close', cb: (code: number, reason: Buffer) => void): unknown;
  on(event: 'error', cb: (err: Error & { code?: string }) => void): unknown;
  on(event: 'pong', cb: () => void): unknown;
}

export interface ConnectionError {
  code: string;
  message: string;
}

export interface FrameConnectionHandlers {
  message(message: Message): void;
  /** Called once. `error` says why, when the close was not a clean one. */
  closed(code: number, reason: string, error: ConnectionError | undefined): void;
}

export interface FrameConnectionOptions {
  heartbeatMs?: number;
}

/**
 * One authenticated WebSocket carrying msgpack frames: decodes and validates
 * what arrives, closes the socket with a coded error on anything malformed,
 * and pings so a silent peer is noticed within HEARTBEAT_MISSES intervals.
 */
export class FrameConnection {
  private missed = 0;
  private readonly heartbeat: NodeJS.Timeout;
  private error: ConnectionError | undefined;
  private closed = false;

  constructor(
    private readonly ws: WsLike,
    private readonly handlers: FrameConnectionHandlers,
    options: FrameConnectionOptions = {},
  ) {
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('pong', () => {
      this.missed = 0;
    });
    ws.on('error', (err) => {
      this.error ??=
        err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? { code: ErrorCode.FrameTooLarge, message: err.message }
          : { code: ErrorCode.Unreachable, message: err.message };
    });
    ws.on('close', (code, reason) => {
      this.closed = true;
      clearInterval(this.heartbeat);
      this.handlers.closed(code, reason.toString(), this.error);
    });
    this.heartbeat = setInterval(() => this.beat(), options.heartbeatMs ?? HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Bytes queued for the socket and not yet written. */
  get buffered(): number {
    return this.ws.bufferedAmount;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(message: Message, flushed?: (err?: Error) => void): void {
    this.sendFrame(encodeMessage(message), flushed);
  }

  /** Sends a frame encoded by the caller (see encodeOutput). */
  sendFrame(frame: Buffer, flushed?: (err?: Error) => void): void {
    if (this.closed) return;
    this.ws.send(frame, flushed);
  }

  /** Sends an `error` frame, then closes: the peer learns why before the socket goes. */
  fail(code: string, message: string, closeCode: number = CloseCode.ProtocolError): void {
    if (this.closed) return;
    this.error ??= { code, message };
    this.send({ t: 'error', code, message });
    this.ws.close(closeCode, truncateReason(`${code}: ${message}`));
  }

  close(code: number = CloseCode.Normal, reason = ''): void {
    if (!this.closed) this.ws.close(code, truncateReason(reason));
  }

  /** Stops reading from the socket (TCP then pushes back on the peer). */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  private receive(data: Buffer, isBinary: boolean): void {
    this.missed = 0;
    if (this.closed) return;
    if (!isBinary) {
      this.fail(
        ErrorCode.FrameMalformed,
        'text frames are not part of the protocol; send binary msgpack',
      );
      return;
    }
    let message: Message;
    try {
      message = decodeMessage(data);
    } catch (err) {
      if (!isOctaskError(err)) throw err;
      this.fail(err.code, err.message);
      return;
    }
    if (message.t === 'error') this.error ??= { code: message.code, message: message.message };
    this.handlers.message(message);
  }

  private beat(): void {
    if (this.missed >= HEARTBEAT_MISSES) {
      this.error ??= {
        code: ErrorCode.Timeout,
        message: `peer silent for ${HEARTBEAT_MISSES} heartbeats`,
      };
      this.ws.terminate();
      return;
    }
    this.missed++;
    try {
      this.ws.ping();
    } catch {
      // Socket closing; the close handler will run.
    }
  }
}

/** Close reasons are capped at 123 bytes by the WebSocket protocol. */
function truncateReason(reason: string): string {
  const buf = Buffer.from(reason);
  return buf.length <= 123 ? reason : buf.subarray(0, 116).toString() + '...';
}
