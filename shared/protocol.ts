/**
 * The wire protocol between the dispatcher and octask-agent.
 *
 * Every WebSocket binary frame holds one msgpack-encoded message, a plain
 * object whose `t` field names its type. The dispatcher dials; both sides
 * send `hello` first. See docs/protocol.md for the full table.
 */

import type { ManifestEntry } from './manifest';
import type { EntryColumns } from './manifestColumns';

/**
 * Bumped on any change a peer of the previous version would misread.
 * 2: the agent owns its slots (runs wait there, `queued`, `load`), tasks
 * outlive connections (`graceMs`, `attach`, `release`, `gone`).
 * 3: a sync may begin with `syncCheck` (answered `syncDone` or `syncStale`),
 * and `syncNeed` asks for what the copy lacks: the agent keeps no store.
 * 4: small whole contents travel many to a frame (`blobs`).
 * 5: a `sync` frame carries its manifest as columns, not one map per entry.
 * 6: `syncStale` may offer the copy's last layout as a `base`, and a `sync`
 * may then carry only what differs from it (`base`, `removed`, `digest`).
 */
export const PROTOCOL_VERSION = 7;

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

/** A device's battery, where the OS exposes one (Linux and Android sysfs). */
export interface Battery {
  /** Charge, 0 to 100. */
  level: number;
  charging: boolean;
}

/**
 * An agent's capacity and load as it reports them: in its hello and in a
 * `load` frame to every connected dispatcher on each change.
 */
export interface AgentLoad {
  maxJobs: number;
  /** Tasks running now, from every dispatcher. */
  running: number;
  /** Tasks waiting at the agent for a slot, from every dispatcher. */
  queued: number;
  /** Of those, the receiving dispatcher's own (so it can tell what its latest sends changed). */
  yoursRunning: number;
  yoursQueued: number;
  /** One-minute load average (0 where the OS has none). */
  loadAvg: number;
  /** Free memory in bytes. */
  freeMemory: number;
  battery: Battery | null;
  /** True while the agent takes no new work (battery below its floor and discharging). */
  resting: boolean;
  /** True while it shuts down: it finishes what runs and takes nothing new. */
  draining: boolean;
}

/** What an agent holds for the dispatcher it greets: tasks that outlived an earlier connection. */
export interface HeldTask {
  task: string;
  /** `lost`: a previous life of the agent started it and was killed; it was ended on restart. */
  state: 'queued' | 'running' | 'exited' | 'lost';
  /** Output chunks produced so far (the next chunk's `seq`). */
  seq: number;
}

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
  /**
   * Dispatcher: how long the agent keeps this dispatcher's tasks running
   * after its connection drops, waiting for it to reattach (the agent caps it).
   */
  graceMs?: number;
  /** Agent: its capacity and load now. */
  load?: AgentLoad;
  /** Agent: the tasks it holds for this dispatcher (by the dispatcher's `id`). */
  tasks?: HeldTask[];
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
  /** Run inside this synced workspace copy (see `sync`); absent: a scratch folder. */
  workspace?: string;
  /** Folder within the workspace to run in. */
  cwd?: string;
  /** Globs of files to report in `exit.artifacts` once the task ends. */
  artifacts?: string[];
  /**
   * A command to run in the copy first, once per digest of its key files
   * (with a workspace; see `SetupStep`).
   */
  setup?: SetupStep;
}

/**
 * A setup command (`npm ci`) the agent runs in a workspace copy, in the
 * task's cwd, before a task, unless it already ran there for this `key`.
 * Its output is the task's; if it fails, the task fails (E_SETUP_FAILED)
 * and the next task runs it again.
 */
export interface SetupStep {
  command: string;
  /** Digest of the key files' manifest hashes (and the command): 64 hex digits. */
  key: string;
}

export type { ManifestEntry } from './manifest';

/**
 * Dispatcher → agent: (part of) the manifest of a workspace. Parts share a
 * `sync` id; the agent answers the one with `last` by `syncNeed`. On the
 * wire `entries` is `columns` (shared/manifestColumns.ts); the codec turns
 * one into the other.
 */
export interface SyncMessage {
  t: 'sync';
  sync: string;
  /** Names the agent's copy of this workspace. */
  workspace: string;
  entries: ManifestEntry[];
  /**
   * Sender side only, never on the wire as such: `entries` already as
   * columns (the CLI's watcher sends them so), which the codec then sends
   * instead of building them again. Must hold exactly `entries`.
   */
  columns?: EntryColumns;
  /** Globs of files the agent never removes from its copy, at any depth. */
  preserve: string[];
  last: boolean;
  /**
   * Only in the first part. True: remove everything the manifest does not
   * list (and `preserve` does not keep). Absent or false: remove only files
   * that came from the workspace and left it; what tasks made stays.
   */
  clean?: boolean;
  /**
   * The digest of a layout the agent offered in `syncStale`: this sync is
   * then one part (`last`), and `entries` are only those that are new or
   * differ from that layout (shared/manifestDelta.ts), `removed` the paths
   * it had that are gone. `digest` names the whole manifest they make; an
   * agent that rebuilds another refuses the sync.
   */
  base?: string;
  removed?: string[];
  /**
   * With `base`: the whole manifest the changes make. In a streamed sync
   * (`syncStale.stream`): on the `last` part, the whole manifest the parts
   * make once sorted by path; required there.
   */
  digest?: string;
}

/**
 * Dispatcher → agent: is your copy of `workspace` laid out from the
 * manifest with this digest (shared/manifestDigest.ts), its files as that
 * layout left them? The agent answers `syncDone` (nothing to send) or
 * `syncStale`, after which the dispatcher sends the manifest as `sync`
 * parts under the same `sync` id.
 */
export interface SyncCheckMessage {
  t: 'syncCheck';
  sync: string;
  workspace: string;
  /**
   * Absent (protocol 7): the dispatcher is still hashing and asks whether
   * it may stream the sync (the agent has no copy of the workspace yet).
   * Answered `syncStale`, with `stream` if so; without it, the dispatcher
   * checks again with the digest once it has one.
   */
  digest?: string;
}

/** Agent → dispatcher: the copy is not what the `syncCheck` asked about; send the manifest. */
export interface SyncStaleMessage {
  t: 'syncStale';
  sync: string;
  /**
   * The digest of the copy's last layout, when the agent holds its manifest
   * (one this agent process laid out): the `sync` may name it as its
   * `base` and send only what differs. Absent: send the whole manifest.
   */
  base?: string;
  /**
   * The answer to a `syncCheck` without digest: the agent has no copy of
   * the workspace, and takes this sync streamed. Its `sync` parts may come
   * in any order of paths, each followed by the `blob`s of the contents it
   * lists first, unasked; the `last` part carries the manifest's `digest`,
   * and `syncNeed` then asks only for what did not come.
   */
  stream?: boolean;
}

/**
 * Agent → dispatcher: the contents its copy lacks (neither unchanged at their
 * path nor found elsewhere in the copy); the dispatcher sends them as `blob`s.
 */
export interface SyncNeedMessage {
  t: 'syncNeed';
  sync: string;
  hashes: string[];
  /**
   * Tasks of this workspace running in the copy now, when the layout would
   * change it: it waits for them (absent: it will not wait).
   */
  busy?: number;
}

/**
 * A chunk of one file's content: dispatcher → agent during a sync, agent →
 * dispatcher when artifacts are fetched (`sync` is then the task id).
 */
export interface BlobMessage {
  t: 'blob';
  sync: string;
  hash: string;
  size: number;
  offset: number;
  data: Uint8Array;
}

/**
 * Many small whole contents in one frame, same direction and `sync` as
 * `blob`: content i is `sizes[i]` bytes of `data`, after those before it.
 * Each is handled as a `blob` of offset 0 would be; a frame per file would
 * cost more than the file for a source tree.
 */
export interface BlobsMessage {
  t: 'blobs';
  sync: string;
  hashes: string[];
  sizes: number[];
  data: Uint8Array;
}

/** Agent → dispatcher: the copy is laid out as the manifest says. */
export interface SyncDoneMessage {
  t: 'syncDone';
  sync: string;
  /** Files written or replaced, and removed, in the agent's copy. */
  written: number;
  removed: number;
  /** Files in the copy that tasks made and the sync left alone (absent from older agents). */
  kept?: number;
  /** How long the layout waited for tasks running in the copy (absent: it did not wait). */
  waitedMs?: number;
}

/** Agent → dispatcher: the sync failed (a bad path, a blob that did not match); nothing was laid out. */
export interface SyncFailedMessage {
  t: 'syncFailed';
  sync: string;
  code: string;
  message: string;
}

/** Dispatcher → agent: send these artifact contents of a finished task. */
export interface FetchMessage {
  t: 'fetch';
  task: string;
  hashes: string[];
}

/** Agent → dispatcher: every blob asked for by `fetch` has been sent (or could not be). */
export interface FetchDoneMessage {
  t: 'fetchDone';
  task: string;
  missing: string[];
}

/** Dispatcher → agent: end a task's whole process group (or drop it, if it still waits for a slot). */
export interface CancelMessage {
  t: 'cancel';
  task: string;
}

/**
 * Dispatcher → agent, after hello: follow a task this dispatcher started on
 * an earlier connection. The agent sends its output from `fromSeq` on, then
 * live output and `exit`, or `gone` if it no longer holds the task.
 */
export interface AttachMessage {
  t: 'attach';
  task: string;
  fromSeq: number;
}

/** Dispatcher → agent: done with a finished task (exit seen, artifacts fetched); the agent may forget it. */
export interface ReleaseMessage {
  t: 'release';
  task: string;
}

/** Agent → dispatcher: the run waits for a free slot; `ahead` tasks go first. */
export interface QueuedMessage {
  t: 'queued';
  task: string;
  ahead: number;
}

/** Agent → every dispatcher: its capacity or load changed. */
export interface LoadMessage {
  t: 'load';
  load: AgentLoad;
}

/** Agent → dispatcher: answer to `attach` for a task the agent does not hold (any more). */
export interface GoneMessage {
  t: 'gone';
  task: string;
  reason: string;
}

/** Agent → dispatcher: the task's process is running. */
export interface StartedMessage {
  t: 'started';
  task: string;
  pid: number;
  /**
   * The absolute path of the workspace copy the task runs in, when it runs in
   * one; the editor maps it back to the local folder in the task's output.
   */
  root?: string;
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
  /** Files matching the run's `artifacts` globs, for the dispatcher to fetch what it lacks. */
  artifacts?: ManifestEntry[];
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

export type AgentBound =
  | HelloMessage
  | RunMessage
  | CancelMessage
  | AttachMessage
  | ReleaseMessage
  | SyncMessage
  | SyncCheckMessage
  | BlobMessage
  | BlobsMessage
  | FetchMessage;
export type DispatcherBound =
  | HelloMessage
  | QueuedMessage
  | LoadMessage
  | GoneMessage
  | StartedMessage
  | OutputMessage
  | ExitMessage
  | RefusedMessage
  | ErrorMessage
  | SyncNeedMessage
  | SyncStaleMessage
  | SyncDoneMessage
  | SyncFailedMessage
  | BlobMessage
  | BlobsMessage
  | FetchDoneMessage;
export type Message = AgentBound | DispatcherBound;
export type MessageType = Message['t'];

/** WebSocket close codes Octask uses (4000-4999 is the private range). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  TooLarge: 1009,
  VersionMismatch: 4001,
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
