import { encodeOutput } from '../shared/codec';
import { blobsOf } from '../shared/blobSender';
import { ErrorCode } from '../shared/errors';
import type { ConnectionError } from '../shared/frameConnection';
import { FrameConnection } from '../shared/frameConnection';
import type { AgentBound, HelloMessage, Message } from '../shared/protocol';
import { CloseCode, PROTOCOL_VERSION } from '../shared/protocol';
import type { WsLike } from '../shared/frameConnection';
import { OCTASK_VERSION } from '../shared/version';
import type { AgentTask } from './agentTask';
import type { SyncReceiver } from './syncReceiver';

/** Above this many unsent bytes a session pauses its tasks' output. */
const HIGH_WATER = 1024 * 1024;
/** ...and resumes them once the socket drains below this. */
const LOW_WATER = 256 * 1024;

/** Frames a greeted session hands to the agent, other than sync traffic. */
export type TaskFrame = Extract<
  AgentBound,
  { t: 'run' | 'cancel' | 'attach' | 'release' | 'fetch' }
>;

/** What a session needs from the agent that owns it. */
export interface SessionHost {
  /** The dispatcher greeted (its hello is in `session.peerHello`): the agent's hello for it. */
  greeted(session: Session): HelloMessage;
  task(session: Session, message: TaskFrame): void;
  /** A new receiver for this session's workspace syncs. */
  syncReceiver(connection: FrameConnection): SyncReceiver;
  sessionClosed(session: Session, error: ConnectionError | undefined): void;
  log(level: 'debug' | 'info' | 'warn', msg: string, fields: Record<string, unknown>): void;
  heartbeatMs?: number;
}

/**
 * One connection from a dispatcher: the hello exchange, and output flow
 * control for the tasks attached to it. The tasks themselves belong to the
 * agent; a session only carries them while it lasts.
 */
export class Session {
  readonly connection: FrameConnection;
  /** The dispatcher's hello, once it came. */
  peerHello: HelloMessage | undefined;
  /** Tasks whose output goes to this connection. */
  readonly attached = new Set<AgentTask>();
  private receiverValue: SyncReceiver | undefined;
  private paused = false;

  constructor(
    ws: WsLike,
    readonly peer: string,
    private readonly host: SessionHost,
  ) {
    this.connection = new FrameConnection(
      ws,
      {
        message: (m) => this.receive(m),
        closed: (code, reason, error) => {
          this.host.log(error ? 'warn' : 'info', 'dispatcher disconnected', {
            peer,
            code,
            reason,
            error,
          });
          this.receiverValue?.close();
          this.host.sessionClosed(this, error);
        },
      },
      { heartbeatMs: host.heartbeatMs },
    );
  }

  /** The dispatcher's stable id (tasks belong to it), once greeted. */
  get owner(): string | undefined {
    return this.peerHello?.id;
  }

  get dispatcherName(): string {
    return this.peerHello ? `${this.peerHello.name} (${this.peerHello.id})` : 'unknown';
  }

  private get receiver(): SyncReceiver {
    return (this.receiverValue ??= this.host.syncReceiver(this.connection));
  }

  attach(task: AgentTask): void {
    this.attached.add(task);
    task.attached = this;
    if (this.paused) task.process?.pause();
  }

  /** The task no longer sends here (it ended and was released, or the connection closed). */
  detach(task: AgentTask): void {
    this.attached.delete(task);
    if (task.attached === this) task.attached = undefined;
    task.process?.resume();
  }

  /** Sends one output chunk of an attached task, pausing the session's tasks while the socket is backed up. */
  sendOutput(task: string, seq: number, stream: 'stdout' | 'stderr', data: Uint8Array): void {
    // Every frame carries the drain check: the one written last is the one
    // whose callback sees the socket empty.
    this.connection.sendFrame(encodeOutput(task, seq, stream, data), this.drained);
    if (!this.paused && this.connection.buffered > HIGH_WATER) {
      this.paused = true;
      for (const t of this.attached) t.process?.pause();
    }
  }

  private readonly drained = (): void => {
    if (!this.paused || this.connection.buffered > LOW_WATER) return;
    this.paused = false;
    for (const t of this.attached) t.process?.resume();
  };

  private receive(message: Message): void {
    if (!this.peerHello) {
      if (message.t !== 'hello') {
        this.connection.fail(
          ErrorCode.HelloRequired,
          `first frame must be hello, got ${message.t}`,
        );
        return;
      }
      this.greet(message);
      return;
    }
    switch (message.t) {
      case 'run':
      case 'cancel':
      case 'attach':
      case 'release':
      case 'fetch':
        this.host.task(this, message);
        return;
      case 'sync':
        this.receiver.part(message);
        return;
      case 'syncCheck':
        this.receiver.check(message);
        return;
      case 'blob':
        this.receiver.blob(message);
        return;
      case 'blobs':
        for (const blob of blobsOf(message)) this.receiver.blob(blob);
        return;
      default:
        this.connection.fail(ErrorCode.UnknownType, `an agent does not accept ${message.t} frames`);
    }
  }

  private greet(hello: HelloMessage): void {
    if (hello.protocol !== PROTOCOL_VERSION) {
      const older = hello.protocol < PROTOCOL_VERSION;
      this.connection.fail(
        ErrorCode.ProtocolVersion,
        `this agent runs Octask ${OCTASK_VERSION} (protocol ${PROTOCOL_VERSION}); dispatcher ${hello.name} runs Octask ${hello.version} (protocol ${hello.protocol}): ${older ? 'update the dispatcher (the octask CLI or the VS Code extension)' : 'update this agent (copy the new octask-agent.js and restart it)'}`,
        CloseCode.VersionMismatch,
      );
      this.host.log('warn', 'dispatcher speaks another protocol version', {
        peer: this.peer,
        dispatcher: hello.name,
        theirs: hello.protocol,
        ours: PROTOCOL_VERSION,
      });
      return;
    }
    if (hello.role !== 'dispatcher') {
      this.connection.fail(
        ErrorCode.BadField,
        'hello.role must be dispatcher when dialling an agent',
      );
      return;
    }
    this.peerHello = hello;
    this.connection.send(this.host.greeted(this));
    this.host.log('info', 'dispatcher connected', {
      peer: this.peer,
      dispatcher: hello.name,
      id: hello.id,
    });
  }
}
