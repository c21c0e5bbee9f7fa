/**
 * JSON-RPC between an editor (the extension's client) and the dispatcher
 * running as `octask dispatcher --stdio`. Each method is declared once here,
 * with who sends it and why; both sides import these names and types.
 */
import type { TaskStatus } from './protocol';

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
  /** Folder within the synced workspace to run in (with a workspace). */
  cwd?: string;
  /** Globs of files to bring back into the local workspace after the task (with a workspace). */
  artifacts?: string[];
  /** Sync this folder to the agent first and run in its copy (JSON-RPC submit only; the CLI prepares its own). */
  sync?: {
    root: string;
    /** Also sync files git ignores that match these. */
    include?: string[];
    exclude?: string[];
    /** Sync only the files matching these (tasks.json `inputs`). */
    inputs?: string[];
    preserve?: string[];
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
  ms: number;
  error: { code: string; message: string } | null;
}

/** What came back from one task's artifacts. */
export interface ArtifactsInfo {
  task: string;
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
}

export type AgentStatus =
  'connecting' | 'online' | 'busy' | 'offline' | 'wrong_key' | 'version_mismatch';

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
  running: number;
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
  /** client → dispatcher request: all agents known; returns AgentInfo[]. */
  listAgents: 'octask/agents/list',
  /** client → dispatcher request: dial an agent at host:port; returns AgentInfo. */
  addAgent: 'octask/agents/add',
  /** client → dispatcher request: forget a listed agent; returns boolean. */
  removeAgent: 'octask/agents/remove',
  /** dispatcher → client notification: an agent's state changed (AgentInfo). */
  workersDidChange: 'octask/workers/didChange',
  /** dispatcher → client notification: a task's state changed (TaskInfo). */
  tasksDidChange: 'octask/tasks/didChange',
  /** dispatcher → client notification: a chunk of task output (OutputEvent). */
  output: 'octask/output',
  /** dispatcher → client notification: a workspace sync to an agent ended (SyncInfo). */
  syncDidChange: 'octask/sync/didChange',
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
