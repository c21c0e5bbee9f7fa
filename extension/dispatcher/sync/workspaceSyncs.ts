import type { OctaskError } from '../../../shared/errors';
import type { FrameConnection } from '../../../shared/frameConnection';
import type { DispatcherBound } from '../../../shared/protocol';
import type { PreparedWorkspace } from './preparedWorkspace';
import type { SyncStats } from './syncSender';
import { SyncSender } from './syncSender';

export type SyncOutcome = SyncStats | OctaskError;

/** A sync's contents sent so far, of those the agent asked for. */
export interface SyncProgress {
  filesSent: number;
  bytesSent: number;
  files: number;
  bytes: number;
  /** Set when the agent waits for this many running tasks of the workspace before laying it out. */
  waitingForTasks?: number;
}

/** Progress is reported at most this often per sync. */
const PROGRESS_EVERY_MS = 200;

/**
 * The syncs of every agent: at most one per agent and workspace version at a
 * time, remembered once done so that tasks after the first on an agent (shards,
 * retries) start at once.
 */
export class WorkspaceSyncs {
  private readonly senders = new Map<string, { link: string; sender: SyncSender }>();
  /** link → workspace id → { digest, outcome } */
  private readonly held = new Map<
    string,
    Map<string, { digest: string; outcome: Promise<SyncOutcome> }>
  >();

  constructor(
    private readonly onDone: (
      link: string,
      workspace: PreparedWorkspace,
      outcome: SyncOutcome,
    ) => void,
    private readonly onProgress?: (
      link: string,
      workspace: PreparedWorkspace,
      progress: SyncProgress,
    ) => void,
  ) {}

  /** Resolves when `link`'s copy of the workspace matches `workspace` (or the sync failed). */
  ensure(
    link: string,
    connection: FrameConnection,
    workspace: PreparedWorkspace,
  ): Promise<SyncOutcome> {
    let perLink = this.held.get(link);
    if (!perLink) this.held.set(link, (perLink = new Map()));
    const known = perLink.get(workspace.id);
    if (known && known.digest === workspace.digest) return known.outcome;
    let last = 0;
    const sender: SyncSender = new SyncSender(
      connection,
      workspace,
      () => {
        const now = performance.now();
        if (!this.onProgress || now - last < PROGRESS_EVERY_MS) return;
        last = now;
        this.onProgress(link, workspace, sender.progress);
      },
      (tasks) => this.onProgress?.(link, workspace, { ...sender.progress, waitingForTasks: tasks }),
    );
    this.senders.set(sender.id, { link, sender });
    const outcome = sender.start().then((result) => {
      this.senders.delete(sender.id);
      // A failed sync is not remembered: the next task tries again.
      if (!('files' in result) && perLink.get(workspace.id)?.outcome === outcome)
        perLink.delete(workspace.id);
      this.onDone(link, workspace, result);
      return result;
    });
    perLink.set(workspace.id, { digest: workspace.digest, outcome });
    return outcome;
  }

  /**
   * A task ran in the agent's copy and may have changed it: the next task
   * there syncs again (cheap when nothing changed: nothing is sent).
   */
  forget(link: string, workspace: string): void {
    this.held.get(link)?.delete(workspace);
  }

  /** Whether `link` has (or is getting) some version of the workspace: placement's tie-break. */
  has(link: string, workspace: string): boolean {
    return this.held.get(link)?.has(workspace) ?? false;
  }

  /** Routes an agent's sync reply; false if it was not one. */
  receive(message: DispatcherBound): boolean {
    if (
      message.t !== 'syncNeed' &&
      message.t !== 'syncStale' &&
      message.t !== 'syncDone' &&
      message.t !== 'syncFailed'
    )
      return false;
    this.senders.get(message.sync)?.sender.receive(message);
    return true;
  }

  /** The agent is gone: its syncs fail, and what it held is forgotten (it may come back without it). */
  linkDown(link: string): void {
    for (const { link: l, sender } of [...this.senders.values()]) if (l === link) sender.abort();
    this.held.delete(link);
  }
}
