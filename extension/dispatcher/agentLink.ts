import type { ClusterKey } from '../../shared/clusterKey';
import { ErrorCode, isOctaskError } from '../../shared/errors';
import type { ConnectionError } from '../../shared/frameConnection';
import { FrameConnection } from '../../shared/frameConnection';
import type { AgentBound, DispatcherBound, HelloMessage, Message } from '../../shared/protocol';
import { CloseCode, PROTOCOL_VERSION } from '../../shared/protocol';
import type { AgentInfo, AgentStatus } from '../../shared/rpc';
import type { AgentAddress } from './transport';
import { dial, formatAddress, pairingOf } from './transport';

export interface LinkOptions {
  address: AgentAddress;
  source: 'listed' | 'mdns';
  /** The name from an mDNS advertisement, shown until the agent's hello says otherwise. */
  advertisedName?: string;
  key: ClusterKey;
  /** What the dispatcher says of itself in hello. */
  hello: HelloMessage;
  connectTimeoutMs?: number;
  /** Reconnect backoff bounds. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface LinkEvents {
  /** Status, hello or error changed. */
  changed(link: AgentLink): void;
  /** A frame from the agent, after the hello exchange. */
  message(link: AgentLink, message: DispatcherBound): void;
  /** The connection that was online is gone; its tasks are lost. */
  down(link: AgentLink, error: ConnectionError | undefined): void;
}

/**
 * The dispatcher's connection to one agent, kept up with capped exponential
 * backoff. Knows the hello exchange; everything after it is the
 * dispatcher's business.
 */
export class AgentLink {
  status: AgentStatus = 'connecting';
  agentHello: HelloMessage | undefined;
  lastError: ConnectionError | undefined;
  running = 0;
  private connection: FrameConnection | undefined;
  private closedByUs = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Whether the current connection finished its hello exchange. */
  private greeted = false;
  /** Resolves once the first connection attempt has an outcome. */
  readonly settled: Promise<void>;
  private settle!: () => void;

  constructor(
    readonly options: LinkOptions,
    private readonly events: LinkEvents,
  ) {
    this.settled = new Promise((resolve) => (this.settle = resolve));
  }

  get key(): string {
    return formatAddress(this.options.address);
  }

  get name(): string {
    return this.agentHello?.name ?? this.options.advertisedName ?? this.key;
  }

  get isOnline(): boolean {
    return this.status === 'online' || this.status === 'busy';
  }

  start(): void {
    void this.connect();
  }

  send(message: AgentBound): boolean {
    if (!this.connection || !this.greeted) return false;
    this.connection.send(message);
    return true;
  }

  /** The open, greeted connection, for bulk transfers (sync blobs). */
  get frames(): FrameConnection | undefined {
    return this.greeted ? this.connection : undefined;
  }

  pause(): void {
    this.connection?.pause();
  }

  resume(): void {
    this.connection?.resume();
  }

  /** Closes for good: no reconnect. */
  close(): void {
    this.closedByUs = true;
    clearTimeout(this.retryTimer);
    this.connection?.close(CloseCode.Normal, 'dispatcher closing');
    this.settle();
  }

  info(): AgentInfo {
    const h = this.agentHello;
    return {
      id: h?.id ?? this.key,
      name: this.name,
      address: this.key,
      status: this.status,
      version: h?.version ?? null,
      protocol: h?.protocol ?? null,
      os: h?.os ?? null,
      arch: h?.arch ?? null,
      cpus: h?.cpus ?? null,
      memory: h?.memory ?? null,
      maxJobs: h?.maxJobs ?? 0,
      running: this.running,
      tags: h?.tags ?? [],
      source: this.options.source,
      lastError: this.lastError ?? null,
    };
  }

  /** Marks the link as unusable without dialling (e.g. mDNS says another cluster). */
  markRefused(status: AgentStatus, error: ConnectionError): void {
    this.status = status;
    this.lastError = error;
    this.events.changed(this);
    this.settle();
  }

  updateBusy(): void {
    if (!this.isOnline) return;
    const next: AgentStatus = this.running >= (this.agentHello?.maxJobs ?? 1) ? 'busy' : 'online';
    if (next !== this.status) {
      this.status = next;
      this.events.changed(this);
    }
  }

  private async connect(): Promise<void> {
    if (this.closedByUs) return;
    this.attempt++;
    let ws;
    try {
      ws = await dial(
        this.options.address,
        this.options.key,
        this.options.connectTimeoutMs ?? 5000,
      );
    } catch (err) {
      const error = isOctaskError(err)
        ? { code: err.code, message: err.message }
        : { code: ErrorCode.Unreachable, message: String(err) };
      this.setStatus(error.code === ErrorCode.WrongKey ? 'wrong_key' : 'offline', error);
      this.settle();
      this.scheduleReconnect();
      return;
    }
    if (this.closedByUs) {
      ws.close(CloseCode.Normal);
      return;
    }
    this.greeted = false;
    this.pairing = pairingOf(ws);
    const connection = new FrameConnection(ws, {
      message: (m) => this.receive(connection, m),
      closed: (code, reason, error) => this.closed(code, reason, error),
    });
    this.connection = connection;
    connection.send(this.options.hello);
  }

  /** The pairing the current connection's key proved (see transport's pairingOf). */
  private pairing: string | undefined;

  /** A paired agent named itself other than its pairing: it may be passing for another agent. */
  private failPairing(connection: FrameConnection, name: string): void {
    const error = {
      code: ErrorCode.WrongKey,
      message: `${this.key} is paired as ${this.pairing ?? '?'} but calls itself ${name}; refusing it, since its key only proves it is ${this.pairing ?? '?'}`,
    };
    this.lastError = error;
    connection.fail(error.code, error.message);
  }

  private receive(connection: FrameConnection, message: Message): void {
    if (!this.greeted) {
      if (message.t === 'error') return; // the close that follows carries it
      if (message.t !== 'hello' || message.role !== 'agent') {
        connection.fail(ErrorCode.HelloRequired, `expected the agent's hello, got ${message.t}`);
        return;
      }
      if (message.protocol !== PROTOCOL_VERSION) {
        const error = {
          code: ErrorCode.ProtocolVersion,
          message: `${this.key} speaks protocol ${message.protocol}, this dispatcher ${PROTOCOL_VERSION}; run the same Octask version on both`,
        };
        this.lastError = error;
        connection.fail(error.code, error.message, CloseCode.VersionMismatch);
        return;
      }
      if (this.pairing !== undefined && message.name !== this.pairing) {
        this.failPairing(connection, message.name);
        return;
      }
      this.greeted = true;
      this.attempt = 0;
      this.agentHello = message;
      this.running = message.running;
      this.lastError = undefined;
      this.status = 'online';
      this.updateBusy();
      this.events.changed(this);
      this.settle();
      return;
    }
    if (message.t === 'hello') {
      connection.fail(ErrorCode.HelloRequired, 'hello sent twice');
      return;
    }
    this.events.message(this, message as DispatcherBound);
  }

  private closed(code: number, reason: string, error: ConnectionError | undefined): void {
    const wasOnline = this.greeted;
    this.greeted = false;
    this.connection = undefined;
    const why = error ??
      this.lastError ?? {
        code: ErrorCode.Unreachable,
        message: `connection closed (${code}${reason ? ': ' + reason : ''})`,
      };
    const versionMismatch =
      code === CloseCode.VersionMismatch || why.code === ErrorCode.ProtocolVersion;
    const wrongKey = why.code === ErrorCode.WrongKey;
    this.setStatus(versionMismatch ? 'version_mismatch' : wrongKey ? 'wrong_key' : 'offline', why);
    if (wasOnline) this.events.down(this, why);
    this.settle();
    this.scheduleReconnect();
  }

  private setStatus(status: AgentStatus, error: ConnectionError | undefined): void {
    this.status = status;
    this.lastError = error;
    this.running = 0;
    this.events.changed(this);
  }

  private scheduleReconnect(): void {
    if (this.closedByUs) return;
    const min = this.options.minBackoffMs ?? 250;
    const max = this.options.maxBackoffMs ?? 30_000;
    const base = Math.min(max, min * 2 ** Math.min(this.attempt, 16));
    // Jitter keeps many dispatchers from reconnecting in lock step.
    const delay = base / 2 + Math.random() * (base / 2);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
    this.retryTimer.unref();
  }
}
