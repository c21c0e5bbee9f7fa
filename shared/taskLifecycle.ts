/**
 * A task's life on the dispatcher, as one state machine whose states carry
 * their own data (the model is pueue's TaskStatus). Every other view of a
 * task (its public status, whether it holds an agent, whether it is over)
 * is derived here, once.
 *
 *   queued ─► syncing ─► waiting ─► running ─► collecting ─► final
 *     ▲          │          │  ▲       │  ▲         │
 *     │          │          ▼  │       ▼  │         │
 *     └──────────┴────── detached ◄────┘  │         │
 *     (a retry, or a      (link lost: the agent may still run it;
 *      lost agent)         reattach returns to waiting or running)
 *
 * Any state but final may also go to final (cancelled, lost, a refusal).
 */

import type { TaskStatus } from './protocol';

/** Where one attempt of a task is: the agent (link key and name) and its id on the wire. */
export interface AttemptRef {
  /** The agent's address, as the dispatcher's link knows it. */
  agent: string;
  /** The agent's name, for people. */
  agentName: string;
  /** The task's id on the wire for this attempt (attempts never share one). */
  wireId: string;
  /** 1 for the first attempt. */
  attempt: number;
}

/** Final statuses: what TaskStatus has beyond pending and running. */
export type FinalStatus = Exclude<TaskStatus, 'pending' | 'running'>;

export type TaskPhase =
  /** At the dispatcher, for an agent to take it. `reason` says why it is (back) here. */
  | { phase: 'queued'; since: number; reason: string | null }
  /** Placed; the agent's copy of the workspace is being brought up to date. No run sent yet. */
  | ({ phase: 'syncing'; since: number } & AttemptRef)
  /**
   * Sent to the agent, which holds it until a slot frees; `ahead` go first
   * (-1 until the agent says: most runs start at once).
   */
  | ({ phase: 'waiting'; since: number; ahead: number } & AttemptRef)
  /** The command runs on the agent. */
  | ({ phase: 'running'; startedAt: number } & AttemptRef)
  /**
   * The link to the agent dropped while the agent held the task; it may still
   * run there. `was` is where it stood; `startedAt` is kept if it had started.
   */
  | ({
      phase: 'detached';
      since: number;
      was: 'waiting' | 'running';
      startedAt: number | null;
    } & AttemptRef)
  /** The command ended; its artifacts are on their way back. */
  | ({ phase: 'collecting'; startedAt: number; exit: ExitFacts } & AttemptRef)
  | { phase: 'final'; status: FinalStatus; endedAt: number };

/** What the agent said of a finished command. */
export interface ExitFacts {
  outcome: 'completed' | 'failed' | 'timed_out' | 'cancelled';
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
}

export type PhaseName = TaskPhase['phase'];

const NEXT: Record<PhaseName, readonly PhaseName[]> = {
  queued: ['syncing', 'waiting', 'running', 'final'],
  // syncing → queued: the link dropped before the run was sent; nothing ran.
  syncing: ['waiting', 'running', 'queued', 'final'],
  // waiting → waiting: the agent said how many are ahead.
  waiting: ['waiting', 'running', 'detached', 'queued', 'final'],
  // running → queued: a failed command with retries left.
  running: ['collecting', 'detached', 'queued', 'final'],
  // detached → queued: the agent is lost; the task runs again elsewhere.
  detached: ['waiting', 'running', 'collecting', 'queued', 'final'],
  collecting: ['queued', 'final'],
  final: [],
};

export function canMove(from: PhaseName, to: PhaseName): boolean {
  return NEXT[from].includes(to);
}

/** Throws on a move the state machine does not have: a bug in the dispatcher, never input. */
export function assertMove(task: string, from: PhaseName, to: PhaseName): void {
  if (!canMove(from, to)) throw new Error(`task ${task}: illegal move ${from} -> ${to}`);
}

export function isFinalPhase(p: TaskPhase): p is Extract<TaskPhase, { phase: 'final' }> {
  return p.phase === 'final';
}

/** The attempt a phase belongs to, when the task is with an agent. */
export function attemptOf(p: TaskPhase): AttemptRef | null {
  return p.phase === 'queued' || p.phase === 'final' ? null : p;
}

/**
 * Whether the task holds room on its agent: sent there and not over. The
 * dispatcher's view of its own load on each agent is derived from this.
 */
export function holdsAgent(p: TaskPhase): boolean {
  return p.phase === 'waiting' || p.phase === 'running' || p.phase === 'collecting';
}

/** The seed's public status: pending until an agent has it, then running, then final. */
export function statusOfPhase(p: TaskPhase): TaskStatus {
  if (p.phase === 'queued') return 'pending';
  if (p.phase === 'final') return p.status;
  return 'running';
}
