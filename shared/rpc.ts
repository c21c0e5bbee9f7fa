/**
 * JSON-RPC between an editor (the extension's client) and the dispatcher
 * running as `octask dispatcher --stdio`. Each method is declared once here,
 * with who sends it and why; both sides import these names and types.
 */
import type { Battery, TaskStatus } from './protocol';
import type { PhaseName } from './taskLifecycle';

/** Where a task may run. */
export type Target = { kind: 'any' } | { kind: 'all' } | { kind: 'agent'; name: string };

/** Reads a target as users write it: `any`, `all`, or an agent's name. */
export function parseTarget(text: string | undefined): Target {
  const t = text?.trim() ?? '';
  if (t === '' || t === 'any') return { kind: 'any' };
  if (t === 'all') return { kind: 'all' };
  return { kind: 'agent', name: t };
}

/** What a user asks to run. */
export interface TaskSpec {
  command: string;
  env?: Record<string, string>;
  /** Seconds; 0 or absent means no timeout. */
  timeoutSec?: number;
  target?: Target;
  /** Split into this many tasks with OCTASK_SHARD_INDEX/COUNT set; default 1. */
  shards?: number;
  /** Times a failed command is run again; default 0. */
  retries?: number;
  /** Times a task lost with its agent is placed again; default 1. */
  lostRetries?: number;
  /** Fill one agent's free slots before the next (default: spread over agents first). */
  pack?: boolean;
  /** Folder within the synced workspace to run in (with a workspace). */
  cwd?: string;
  /**
   * Globs of files to bring back into the local workspace after the task
   * (with a workspace), relative to `cwd`; a leading `/` means the root.
   */
  artifacts?: string[];
  /**
   * Run `command` in the agent's copy first, once per agent per content of
   * the files matching `key` (globs relative to `cwd`, like `artifacts`).
   */
  setup?: { command: string; key?: string[] };
  /** Sync this folder to the agent first and run in its copy (JSON-RPC submit only; the CLI prepares its own). */
  sync?: {
    root: string;
    /** Also sync files git ignores that match these. */
    include?: string[];
    exclude?: string[];
    /** Sync only the files matching these (tasks.json `inputs`). */
    inputs?: string[];
    preserve?: string[];
    /** Lay out a fresh copy: remove what earlier tasks made there. */
    clean?: boolean;
  };
}

/** What the dispatcher reports of one agent's workspace sync. */
export interface SyncInfo {
  agent: string;
  workspace: string;
  /** The local folder that was synced. */
  root: string;
  files: number;
  filesSent: number;
  bytesSent: number;
  /** Files the agent removed from its copy (they left the workspace, or `clean`). */
  removed: number;
  /** Files tasks made in the copy that stayed (node_modules, build output). */
  kept: number;
  /** How long the agent waited for a running task of this workspace before changing its copy. */
  waitedMs: number;
  ms: number;
  error: { code: string; message: string } | null;
}

/** A sync under way to one agent: contents sent so far, of those it asked for. */
export interface SyncProgressInfo {
  agent: string;
  workspace: string;
  filesSent: number;
  bytesSent: number;
  /** Contents the agent asked for (what it lacked). */
  files: number;
  bytes: number;
  /** Set once, when the agent will change its copy only after this many running tasks of it end. */
  waitingForTasks?: number;
}

/** What came back from one task's artifacts. */
export interface ArtifactsInfo {
  task: string;
  /** The agent the task ran on. */
  agent: string;
  /** The task's artifact globs that matched no file on the agent. */
  unmatched: string[];
  files: number;
  bytes: number;
  /** Artifacts refused or not brought back, each with why: shown as warnings. */
  skipped: Array<{ path: string; reason: string }>;
}

/** A task as the dispatcher reports it. */
export interface TaskInfo {
  id: string;
  /** Tasks submitted together (shards, `all`) share a group id. */
  group: string;
  command: string;
  status: TaskStatus;
  /** Agent name while running and after; null before placement. */
  agent: string | null;
  shard: number | null;
  shardCount: number;
  exitCode: number | null;
  signal: string | null;
  /** Attempts placed so far (a retry, or a run again after a lost agent, adds one). */
  attempts: number;
  /** Epoch milliseconds. */
  queuedAt: number;
  startedAt: number | null;
  endedAt: number | null;
  durationMs: number | null;
  /** The workspace copy's absolute path on the agent, once the task runs in one. */
  agentRoot: string | null;
  /** Set when the task ended without running to an exit (refused, lost, no agent). */
  error: { code: string; message: string } | null;
  /** Where it is in its life (shared/taskLifecycle.ts): finer than `status`. */
  phase: PhaseName;
  /** While it waits at its agent for a slot: how many go first; else null. */
  ahead: number | null;
  /** The agent of the attempt before this one, once it was run again elsewhere. */
  previousAgent: string | null;
  /** Why it was last queued again (`pi lost`, `exit code 1; retrying`); null before any retry. */
  retryReason: string | null;
}

export type AgentStatus =
  | 'connecting'
  | 'online'
  | 'busy'
  /** Connected, but taking no new work (battery below its floor, discharging). */
  | 'resting'
  | 'offline'
  | 'wrong_key'
  | 'version_mismatch';

/** An agent as the dispatcher reports it. */
export interface AgentInfo {
  /** The agent's own id once it said hello; else the address. */
  id: string;
  name: string;
  address: string;
  status: AgentStatus;
  version: string | null;
  protocol: number | null;
  os: string | null;
  arch: string | null;
  cpus: number | null;
  memory: number | null;
  maxJobs: number;
  /** Tasks running on it now, from every dispatcher. */
  running: number;
  /** Tasks waiting at it for a slot, from every dispatcher. */
  queued: number;
  loadAvg: number | null;
  freeMemory: number | null;
  battery: Battery | null;
  /** Taking no new work: battery below the agent's floor and discharging. */
  resting: boolean;
  /**
   * How to tell it apart where names repeat: its name, or `name (2)` for a
   * second agent with the same name (the dispatcher warns once).
   */
  label: string;
  tags: string[];
  /** How the dispatcher learnt of it. */
  source: 'listed' | 'mdns';
  /** Why it is not online, when it is not. */
  lastError: { code: string; message: string } | null;
}

export const RpcMethod = {
  /** client → dispatcher request: submit a task spec; returns SubmitResult. */
  submit: 'octask/tasks/submit',
  /** client → dispatcher request: cancel a task by id; returns boolean (found). */
  cancel: 'octask/tasks/cancel',
  /** client → dispatcher request: all tasks known; returns TaskInfo[]. */
  listTasks: 'octask/tasks/list',
  /**
   * client → dispatcher request `{ id }`: a task's output from before this
   * dispatcher started (its journal), as `{ stream, text }[]`; what follows
   * comes as `octask/output` notifications. A reloaded editor asks it once.
   */
  taskOutput: 'octask/tasks/output',
  /** client → dispatcher request: all agents known; returns AgentInfo[]. */
  listAgents: 'octask/agents/list',
  /** client → dispatcher request: dial an agent at host:port; returns AgentInfo. */
  addAgent: 'octask/agents/add',
  /** client → dispatcher request: forget a listed agent; returns boolean. */
  removeAgent: 'octask/agents/remove',
  /** client → dispatcher request: dial a known agent now, not after its backoff; returns boolean (known). */
  reconnectAgent: 'octask/agents/reconnect',
  /** dispatcher → client notification: an agent's state changed (AgentInfo). */
  workersDidChange: 'octask/workers/didChange',
  /** dispatcher → client notification: a task's state changed (TaskInfo). */
  tasksDidChange: 'octask/tasks/didChange',
  /** dispatcher → client notification: a chunk of task output (OutputEvent). */
  output: 'octask/output',
  /** dispatcher → client notification: a workspace sync to an agent ended (SyncInfo). */
  syncDidChange: 'octask/sync/didChange',
  /** dispatcher → client notification: a sync's contents on their way, at most every 200 ms (SyncProgressInfo). */
  syncProgress: 'octask/sync/progress',
  /** dispatcher → client notification: a task's artifacts were brought back (ArtifactsInfo). */
  artifactsDidChange: 'octask/artifacts/didChange',
  /** dispatcher → client notification: a line for the event log (LogEvent). */
  log: 'octask/log',
} as const;

export interface SubmitResult {
  tasks: TaskInfo[];
}

export interface OutputEvent {
  task: string;
  stream: 'stdout' | 'stderr';
  /** UTF-8 text; JSON-RPC carries no bytes. */
  text: string;
}

export interface LogEvent {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  /** Structured details (ids, addresses, error codes), kept apart from the sentence. */
  fields?: Record<string, unknown>;
  time: number;
}
