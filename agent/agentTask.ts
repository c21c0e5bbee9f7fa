import type { ExitMessage, HeldTask, RunMessage, StartedMessage } from '../shared/protocol';
import type { OutputSpool } from './outputSpool';
import type { TaskProcess } from './runner';
import type { Session } from './session';

/**
 * One task as the agent holds it. It belongs to the dispatcher that sent it
 * (by that dispatcher's stable id), not to a connection: a dropped
 * connection detaches it, and the same dispatcher reattaches later.
 *
 *   waiting (for a slot) → starting (folder) → running → exited
 *   waiting → exited (cancelled, or refused while draining / resting)
 */
export class AgentTask {
  state: 'waiting' | 'starting' | 'running' | 'exited' = 'waiting';
  process: TaskProcess | undefined;
  started: StartedMessage | undefined;
  exit: ExitMessage | undefined;
  /** Artifact contents by hash → file, until fetched. */
  artifacts = new Map<string, string>();
  /** The connection output goes to now; undefined while detached. */
  attached: Session | undefined;
  /** The next seq `attached` has not been sent. */
  cursor = 0;
  cancelRequested = false;

  constructor(
    readonly owner: string,
    readonly message: RunMessage,
    readonly spool: OutputSpool,
  ) {}

  get id(): string {
    return this.message.task;
  }

  /** The registry key: task ids are unique per dispatcher only. */
  get key(): string {
    return taskKey(this.owner, this.id);
  }

  held(): HeldTask {
    const state = this.state === 'starting' ? 'running' : this.state;
    return {
      task: this.id,
      state: state === 'waiting' ? 'queued' : state,
      seq: this.spool.nextSeq,
    };
  }
}

export function taskKey(owner: string, task: string): string {
  return `${owner}\u0000${task}`;
}
