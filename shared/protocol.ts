/**
 * The wire protocol between the dispatcher and octask-agent.
 *
 * Every WebSocket binary frame holds one msgpack-encoded message, a plain
 * object whose `t` field names its type. The dispatcher dials; both sides
 * send `hello` first. See docs/protocol.md for the full table.
 */

/** Bumped on any change a peer of the previous version would misread. */
export const PROTOCOL_VERSION = 1;

/** Largest frame either side accepts; bigger ones close the socket (1009). */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;

/** Default TCP port an agent listens on. */
export const DEFAULT_AGENT_PORT = 7879;

/** DNS-SD service type agents advertise (`_octask._tcp`). */
export const MDNS_SERVICE_TYPE = 'octask';

/** How often each side pings; a peer silent for 3 intervals is gone. */
export const HEARTBEAT_MS = 5000;
export const HEARTBEAT_MISSES = 3;

export type Role = 'agent' | 'dispatcher';

/** Sent by both sides as their first frame. */
export interface HelloMessage {
  t: 'hello';
  protocol: number;
  role: Role;
  /** Stable id of the sender (agent id or dispatcher id). */
  id: string;
  name: string;
  /** Octask version of the sender, for display. */
  version: string;
  os: string;
  arch: string;
  cpus: number;
  /** Total memory in bytes. */
  memory: number;
  /** Agent: task slots. Dispatcher: 0. */
  maxJobs: number;
  /** Agent: tasks running now, across all dispatchers. */
  running: number;
  tags: string[];
}

/** Dispatcher → agent: start a task. */
export interface RunMessage {
  t: 'run';
  task: string;
  /** A shell command line, run by the agent's shell. */
  command: string;
  /** Added to the agent's own environment. */
  env: Record<string, string>;
  /** 0 means no timeout. */
  timeoutMs: number;
}

/** Dispatcher → agent: end a task's whole process group. */
export interface CancelMessage {
  t: 'cancel';
  task: string;
}

/** Agent → dispatcher: the task's process is running. */
export interface StartedMessage {
  t: 'started';
  task: string;
  pid: number;
}

export type OutputStream = 'stdout' | 'stderr';

/** Agent → dispatcher: a chunk of a task's output, numbered from 0 per task. */
export interface OutputMessage {
  t: 'output';
  task: string;
  seq: number;
  stream: OutputStream;
  data: Uint8Array;
}

/** How a task's process ended, as the agent saw it. */
export type ExitOutcome = 'completed' | 'failed' | 'timed_out' | 'cancelled';

/** Agent → dispatcher: the task is over; no more output follows. */
export interface ExitMessage {
  t: 'exit';
  task: string;
  outcome: ExitOutcome;
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  /** Slots in use on the agent after this task left. */
  running: number;
}

/** Agent → dispatcher: the task was not started (policy, spawn failure). */
export interface RefusedMessage {
  t: 'refused';
  task: string;
  code: string;
  message: string;
}

/** Either way: a connection-level error; the sender closes the socket next. */
export interface ErrorMessage {
  t: 'error';
  code: string;
  message: string;
}

export type AgentBound = HelloMessage | RunMessage | CancelMessage;
export type DispatcherBound =
  HelloMessage | StartedMessage | OutputMessage | ExitMessage | RefusedMessage | ErrorMessage;
export type Message = AgentBound | DispatcherBound;
export type MessageType = Message['t'];

/** WebSocket close codes Octask uses (4000-4999 is the private range). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  TooLarge: 1009,
  VersionMismatch: 4001,
  Duplicate: 4002,
  Timeout: 4003,
} as const;

/** Task statuses, as the dispatcher records them. */
export type TaskStatus =
  'pending' | 'running' | 'completed' | 'failed' | 'timed_out' | 'cancelled' | 'lost';

export const FINAL_STATUSES: ReadonlySet<TaskStatus> = new Set([
  'completed',
  'failed',
  'timed_out',
  'cancelled',
  'lost',
]);
