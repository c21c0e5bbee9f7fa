import type { ClusterKey } from '../../shared/clusterKey';
import { ErrorCode, isOctaskError } from '../../shared/errors';
import type { ConnectionError } from '../../shared/frameConnection';
import { FrameConnection } from '../../shared/frameConnection';
import type {
  AgentBound,
  AgentLoad,
  DispatcherBound,
  HelloMessage,
  Message,
} from '../../shared/protocol';
import { CloseCode, PROTOCOL_VERSION } from '../../shared/protocol';
import { OCTASK_VERSION } from '../../shared/version';
import type { AgentInfo, AgentStatus } from '../../shared/rpc';
import type { AgentAddress } from './transport';
import { dial, formatAddress, pairingOf } from './transport';

/** Longest wait between dials while tasks there wait to be reattached. */
const URGENT_MAX_BACKOFF_MS = 2000;

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
  /** Ping interval (tests shorten it). */
  heartbeatMs?: number;
}

export interface LinkEvents {
  /** Status, hello or error changed. */
  changed(link: Link): void;
  /** A frame from the agent, after the hello exchange. */
  message(link: Link, message: DispatcherBound): void;
  /** The connection that was online is gone; its tasks are detached (the agent may still run them). */
  down(link: Link, error: ConnectionError | undefined): void;
}

/**
 * What the dispatcher needs of a link to one agent. AgentLink is the real
 * one; unit tests of the dispatcher's policy hand in fakes that need no
 * sockets.
 */
export interface Link {
  readonly options: LinkOptions;
  readonly key: string;
  readonly name: string;
  readonly status: AgentStatus;
  readonly isOnline: boolean;
  readonly agentHello: HelloMessage | undefined;
  readonly lastError: ConnectionError | undefined;
  readonly load: AgentLoad | undefined;
  readonly settled: Promise<void>;
  /** The open, greeted connection, for bulk transfers (sync blobs). */
  readonly frames: FrameConnection | undefined;
  label: string | undefined;
  urgent: boolean;
  start(): void;
  send(message: AgentBound): boolean;
  close(): void;
  pause(): void;
  resume(): void;
  reconnectNow(): void;
  markRefused(status: AgentStatus, error: ConnectionError): void;
  info(): AgentInfo;
}

/**
 * The dispatcher's connection to one agent, kept up with capped exponential
 * backoff. Knows the hello exchange; everything after it is the
 * dispatcher's business.
 */
export class AgentLink implements Link {
  status: AgentStatus = 'connecting';
  agentHello: HelloMessage | undefined;
  lastError: ConnectionError | undefined;
  /** Capacity and load as the agent last reported them (hello, then `load` frames). */
  load: AgentLoad | undefined;
  /** How people tell it apart when names repeat (set by the dispatcher). */
  label: string | undefined;
  /** Dial again quickly: the dispatcher waits to reattach to tasks there. */
  urgent = false;
  private connection: FrameConnection | undefined;
  private closedByUs = false;
  private attempt = 0;
  private dialling = false;
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
    return this.status === 'online' || this.status === 'busy' || this.status === 'resting';
  }

  get running(): number {
    return this.load?.running ?? 0;
  }

  /** Dials now instead of waiting out the backoff (the agent was seen again, or the user asked). */
  reconnectNow(): void {
    if (this.closedByUs || this.connection || this.dialling) return;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    void this.connect();
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
      maxJobs: this.load?.maxJobs ?? h?.maxJobs ?? 0,
      running: this.running,
      queued: this.load?.queued ?? 0,
      loadAvg: this.load?.loadAvg ?? null,
      freeMemory: this.load?.freeMemory ?? null,
      battery: this.load?.battery ?? null,
      resting: this.load?.resting ?? false,
      label: this.label ?? this.name,
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

  /** Online, busy (every slot taken) or resting, from the agent's latest figures. */
  private statusFromLoad(): AgentStatus {
    const load = this.load;
    if (load?.resting) return 'resting';
    return load && load.running >= load.maxJobs ? 'busy' : 'online';
  }

  private async connect(): Promise<void> {
    if (this.closedByUs) return;
    this.attempt++;
    let ws;
    this.dialling = true;
    try {
      ws = await dial(
        this.options.address,
        this.options.key,
        this.options.connectTimeoutMs ?? 5000,
      );
    } catch (err) {
      this.dialling = false;
      const error = isOctaskError(err)
        ? { code: err.code, message: err.message }
        : { code: ErrorCode.Unreachable, message: String(err) };
      this.setStatus(error.code === ErrorCode.WrongKey ? 'wrong_key' : 'offline', error);
      this.settle();
      this.scheduleReconnect();
      return;
    }
    this.dialling = false;
    if (this.closedByUs) {
      ws.close(CloseCode.Normal);
      return;
    }
    this.greeted = false;
    this.pairing = pairingOf(ws);
    const connection = new FrameConnection(
      ws,
      {
        message: (m) => this.receive(connection, m),
        closed: (code, reason, error) => this.closed(code, reason, error),
      },
      { heartbeatMs: this.options.heartbeatMs },
    );
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
      if (message.t === 'error') {
        // The close that follows ends the connection; this says why.
        this.lastError = { code: message.code, message: message.message };
        return;
      }
      if (message.t !== 'hello' || message.role !== 'agent') {
        connection.fail(ErrorCode.HelloRequired, `expected the agent's hello, got ${message.t}`);
        return;
      }
      if (message.protocol !== PROTOCOL_VERSION) {
        const older = message.protocol < PROTOCOL_VERSION;
        const error = {
          code: ErrorCode.ProtocolVersion,
          message: `agent ${message.name} at ${this.key} runs Octask ${message.version} (protocol ${message.protocol}); this dispatcher runs Octask ${OCTASK_VERSION} (protocol ${PROTOCOL_VERSION}): ${older ? 'update the agent (copy the new octask-agent.js to it and restart it)' : 'update this dispatcher (the octask CLI or the VS Code extension)'}`,
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
      this.load = message.load;
      this.lastError = undefined;
      this.status = this.statusFromLoad();
      this.events.changed(this);
      this.settle();
      return;
    }
    if (message.t === 'hello') {
      connection.fail(ErrorCode.HelloRequired, 'hello sent twice');
      return;
    }
    if (message.t === 'load') {
      this.load = message.load;
      this.status = this.statusFromLoad();
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
    this.load = undefined;
    this.events.changed(this);
  }

  private scheduleReconnect(): void {
    if (this.closedByUs) return;
    const min = this.options.minBackoffMs ?? 250;
    // Tasks wait there to be reattached: keep dialling often.
    const max = this.urgent
      ? Math.min(URGENT_MAX_BACKOFF_MS, this.options.maxBackoffMs ?? 30_000)
      : (this.options.maxBackoffMs ?? 30_000);
    const base = Math.min(max, min * 2 ** Math.min(this.attempt, 16));
    // Jitter keeps many dispatchers from reconnecting in lock step.
    const delay = base / 2 + Math.random() * (base / 2);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
    // An idle link must not keep a CLI alive; one with tasks to reattach must.
    if (!this.urgent) this.retryTimer.unref();
  }
}
