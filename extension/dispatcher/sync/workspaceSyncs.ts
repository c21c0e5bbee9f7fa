import type { OctaskError } from '../../../shared/errors';
import type { FrameConnection } from '../../../shared/frameConnection';
import type { DispatcherBound } from '../../../shared/protocol';
import type { PreparedWorkspace } from './preparedWorkspace';
import type { SyncStats } from './syncSender';
import { SyncSender } from './syncSender';
import type { WorkspaceFeed } from './workspaceFeed';

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
  /**
   * Streamed first syncs under way, by link then workspace id, each with
   * the sender that knows which workspace it streams: a task's sync of
   * that workspace waits for it, and takes its outcome when it laid out
   * the very manifest the task needs.
   */
  private readonly streams = new Map<string, Map<string, SyncSender>>();

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
    const streamed = this.streams.get(link)?.get(workspace.id);
    streamed?.taskPlaced();
    // A streamed sync of this very preparation stands for this one; any
    // other outcome (declined, failed, another manifest) syncs as usual.
    const result = streamed
      ? streamed.done.then((r) =>
          'files' in r && streamed.synced?.digest === workspace.digest
            ? r
            : this.send(link, connection, workspace),
        )
      : this.send(link, connection, workspace);
    const outcome = result.then((r) => {
      // A failed sync is not remembered: the next task tries again.
      if (!('files' in r) && perLink.get(workspace.id)?.outcome === outcome)
        perLink.delete(workspace.id);
      this.onDone(link, workspace, r);
      return r;
    });
    perLink.set(workspace.id, { digest: workspace.digest, outcome });
    return outcome;
  }

  /**
   * Streams a workspace still being hashed (`feed`, open) to `link`, which
   * takes it if it has no copy of that workspace yet: the files are
   * written there while the rest are hashed. A task's sync of it to
   * `link` then waits for this one.
   */
  stream(link: string, connection: FrameConnection, feed: WorkspaceFeed): void {
    const id = feed.header?.id;
    if (id === undefined || this.held.get(link)?.has(id) || this.streams.get(link)?.has(id)) return;
    let perLink = this.streams.get(link);
    if (!perLink) this.streams.set(link, (perLink = new Map()));
    const sender = this.sender(link, connection, feed);
    perLink.set(id, sender);
    void sender.start().then(() => {
      if (this.streams.get(link)?.get(id) === sender) this.streams.get(link)?.delete(id);
    });
  }

  private send(
    link: string,
    connection: FrameConnection,
    workspace: PreparedWorkspace,
  ): Promise<SyncOutcome> {
    return this.sender(link, connection, workspace).start();
  }

  /** A sender whose replies are routed to it, and whose progress is reported, until it is done. */
  private sender(
    link: string,
    connection: FrameConnection,
    workspace: PreparedWorkspace | WorkspaceFeed,
  ): SyncSender {
    let last = 0;
    // A streamed sync is shown once hashing is over (the hashing has its own line until then).
    const prepared = (): PreparedWorkspace | undefined =>
      sender.synced ??
      ('entriesDigest' in workspace || workspace.ended instanceof Error
        ? undefined
        : workspace.ended);
    const report = (progress: SyncProgress): void => {
      const ws = prepared();
      if (ws) this.onProgress?.(link, ws, progress);
    };
    const sender: SyncSender = new SyncSender(
      connection,
      workspace,
      () => {
        const now = performance.now();
        if (!this.onProgress || now - last < PROGRESS_EVERY_MS) return;
        last = now;
        report(sender.progress);
      },
      (tasks) => report({ ...sender.progress, waitingForTasks: tasks }),
    );
    this.senders.set(sender.id, { link, sender });
    void sender.done.then(() => this.senders.delete(sender.id));
    return sender;
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
    return (
      this.held.get(link)?.has(workspace) === true ||
      this.streams.get(link)?.has(workspace) === true
    );
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
    this.streams.delete(link);
  }
}
