import type { TaskStatus } from '../../shared/protocol';

/** The transitions a task may make; anything else is a bug in the dispatcher. */
const NEXT: Record<TaskStatus, readonly TaskStatus[]> = {
  pending: ['running', 'cancelled', 'lost'],
  // back to pending: a retry (failed command with retries left, or a lost agent)
  running: ['completed', 'failed', 'timed_out', 'cancelled', 'lost', 'pending'],
  completed: [],
  failed: [],
  timed_out: [],
  cancelled: [],
  lost: [],
};

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return NEXT[from].includes(to);
}

export function assertTransition(task: string, from: TaskStatus, to: TaskStatus): void {
  if (!canTransition(from, to))
    throw new Error(`task ${task}: illegal transition ${from} -> ${to}`);
}

export function isFinal(status: TaskStatus): boolean {
  return NEXT[status].length === 0;
}
