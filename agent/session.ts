import { encodeOutput } from '../shared/codec';
import { ErrorCode } from '../shared/errors';
import type { ConnectionError } from '../shared/frameConnection';
import { FrameConnection } from '../shared/frameConnection';
import type {
  CancelMessage,
  FetchMessage,
  HelloMessage,
  Message,
  RunMessage,
} from '../shared/protocol';
import { CloseCode, PROTOCOL_VERSION } from '../shared/protocol';
import type { WsLike } from '../shared/frameConnection';
import type { TaskProcess } from './runner';
import type { SyncReceiver } from './syncReceiver';

/** Above this many unsent bytes a session pauses its tasks' output. */
const HIGH_WATER = 1024 * 1024;
/** ...and resumes them once the socket drains below this. */
const LOW_WATER = 256 * 1024;

/** What a session needs from the agent that owns it. */
export interface SessionHost {
  hello(): HelloMessage;
  /** Starts the task (adding it to `session.tasks`) or refuses it; reports through the session. */
  startTask(session: Session, message: RunMessage): void;
  /** A new receiver for this session's workspace syncs. */
  syncReceiver(connection: FrameConnection): SyncReceiver;
  /** Sends the artifact contents asked for. */
  fetch(session: Session, message: FetchMessage): void;
  sessionClosed(session: Session, error: ConnectionError | undefined): void;
  log(level: 'debug' | 'info' | 'warn', msg: string, fields: Record<string, unknown>): void;
}

/**
 * One dispatcher's connection to this agent: the hello exchange, the
 * tasks it started, and flow control of their output.
 */
export class Session {
  readonly connection: FrameConnection;
  /** The dispatcher's hello, once it came. */
  peerHello: HelloMessage | undefined;
  readonly tasks = new Map<string, TaskProcess>();
  /** Artifacts of finished tasks, by task then content hash → file, until fetched. */
  readonly artifacts = new Map<string, Map<string, string>>();
  private receiverValue: SyncReceiver | undefined;
  private paused = false;
  private readonly seqs = new Map<string, number>();

  constructor(
    ws: WsLike,
    readonly peer: string,
    private readonly host: SessionHost,
  ) {
    this.connection = new FrameConnection(ws, {
      message: (m) => this.receive(m),
      closed: (code, reason, error) => {
        this.host.log(error ? 'warn' : 'info', 'dispatcher disconnected', {
          peer,
          code,
          reason,
          error,
        });
        for (const task of this.tasks.values()) task.cancel();
        this.receiverValue?.close();
        this.host.sessionClosed(this, error);
      },
    });
  }

  private get receiver(): SyncReceiver {
    return (this.receiverValue ??= this.host.syncReceiver(this.connection));
  }

  get dispatcherName(): string {
    return this.peerHello ? `${this.peerHello.name} (${this.peerHello.id})` : 'unknown';
  }

  /** Sends task output, pausing every task of this session while the socket is backed up. */
  sendOutput(task: string, stream: 'stdout' | 'stderr', data: Buffer): void {
    const seq = this.seqs.get(task) ?? 0;
    this.seqs.set(task, seq + 1);
    // Every frame carries the drain check: the one written last is the one
    // whose callback sees the socket empty.
    this.connection.sendFrame(encodeOutput(task, seq, stream, data), this.drained);
    if (!this.paused && this.connection.buffered > HIGH_WATER) {
      this.paused = true;
      for (const t of this.tasks.values()) t.pause();
    }
  }

  taskEnded(task: string): void {
    this.tasks.delete(task);
    this.seqs.delete(task);
  }

  private readonly drained = (): void => {
    if (!this.paused || this.connection.buffered > LOW_WATER) return;
    this.paused = false;
    for (const t of this.tasks.values()) t.resume();
  };

  /** New tasks start paused while the session is backed up. */
  get isPaused(): boolean {
    return this.paused;
  }

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
        this.run(message);
        return;
      case 'cancel':
        this.cancel(message);
        return;
      case 'sync':
        this.receiver.part(message);
        return;
      case 'blob':
        this.receiver.blob(message);
        return;
      case 'fetch':
        this.host.fetch(this, message);
        return;
      default:
        this.connection.fail(ErrorCode.UnknownType, `an agent does not accept ${message.t} frames`);
    }
  }

  private greet(hello: HelloMessage): void {
    if (hello.protocol !== PROTOCOL_VERSION) {
      this.connection.fail(
        ErrorCode.ProtocolVersion,
        `agent speaks protocol ${PROTOCOL_VERSION}, dispatcher ${hello.protocol}; run the same Octask version on both`,
        CloseCode.VersionMismatch,
      );
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
    this.connection.send(this.host.hello());
    this.host.log('info', 'dispatcher connected', {
      peer: this.peer,
      dispatcher: hello.name,
      id: hello.id,
    });
  }

  private run(message: RunMessage): void {
    if (this.tasks.has(message.task)) {
      this.connection.send({
        t: 'refused',
        task: message.task,
        code: ErrorCode.DuplicateTask,
        message: `task ${message.task} is already running here`,
      });
      return;
    }
    this.host.startTask(this, message);
  }

  private cancel(message: CancelMessage): void {
    this.tasks.get(message.task)?.cancel();
  }
}
