import { ErrorCode, isOctaskError } from '../shared/errors';
import type { FrameConnection } from '../shared/frameConnection';
import type { Logger } from '../shared/logger';
import type { BlobMessage, ManifestEntry, SyncMessage } from '../shared/protocol';
import type { BlobWriter, ContentStore } from './contentStore';
import { asNoSpace } from './contentStore';
import { CopyUsers } from './copyUsers';
import type { WorkspaceCopies } from './workspaceCopy';

/** What one key holder may leave the agent holding for unfinished syncs. */
export interface SyncLimits {
  /** Most manifest entries one sync may carry (10 parts of the largest frame's worth, roughly). */
  entriesPerSync: number;
  /** Most syncs one connection may have open at once (the dispatcher runs one per workspace). */
  openSyncs: number;
  /** A sync with no part or blob for this long is dropped, and its memory with it. */
  idleMs: number;
}

export const DEFAULT_SYNC_LIMITS: SyncLimits = {
  entriesPerSync: 500_000,
  openSyncs: 8,
  idleMs: 5 * 60_000,
};

/**
 * Manifest entries held by unfinished syncs, across every connection: a
 * held entry costs a few hundred bytes, so this bounds the memory syncs can
 * pin (about 250 MB at the default) whoever sends them.
 */
export class EntryBudget {
  private used = 0;
  constructor(readonly limit = 1_000_000) {}

  get inFlight(): number {
    return this.used;
  }

  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

interface PendingSync {
  workspace: string;
  entries: ManifestEntry[];
  preserve: string[];
  clean: boolean;
  /** Blobs still to arrive, by hash, with their writer once the first chunk came. */
  waiting: Map<string, { size: number; received: number; writer?: BlobWriter }>;
  /** Blobs this sync put in the store: a failed sync removes them, so a full disk is not left full. */
  added: Set<string>;
  done: boolean;
  /** Drops the sync once it stops making progress. */
  idle: NodeJS.Timeout;
}

/**
 * One dispatcher connection's syncs: gathers manifest parts, asks for the
 * blobs the store lacks, checks each blob against its hash, and lays out the
 * copy once everything is there. Any failure ends that sync with
 * `syncFailed` and leaves the copy as it was.
 */
export class SyncReceiver {
  private readonly syncs = new Map<string, PendingSync>();
  /** Syncs that failed: their late blobs are dropped quietly (one syncFailed is enough). */
  private readonly failed = new Set<string>();

  constructor(
    private readonly connection: FrameConnection,
    private readonly store: ContentStore,
    private readonly copies: WorkspaceCopies,
    private readonly logger: Logger,
    /** Copies not synced for this long are removed. */
    private readonly keepWorkspacesMs: number = 7 * 24 * 3600 * 1000,
    /** The agent's tasks per copy: a layout that changes a copy waits for them. */
    private readonly users: CopyUsers = new CopyUsers(),
    /** Shared by every connection of the agent. */
    private readonly budget: EntryBudget = new EntryBudget(),
    private readonly limits: SyncLimits = DEFAULT_SYNC_LIMITS,
  ) {}

  /** Syncs begun and not yet done or failed. */
  get open(): number {
    return this.syncs.size;
  }

  part(message: SyncMessage): void {
    if (this.failed.has(message.sync)) return;
    let sync = this.syncs.get(message.sync);
    if (!sync) {
      if (this.syncs.size >= this.limits.openSyncs) {
        this.fail(
          message.sync,
          ErrorCode.Limit,
          `a connection may have at most ${this.limits.openSyncs} syncs open at once`,
        );
        return;
      }
      sync = {
        workspace: message.workspace,
        entries: [],
        preserve: [],
        clean: message.clean ?? false,
        waiting: new Map(),
        added: new Set(),
        done: false,
        idle: this.idleTimer(message.sync),
      };
      this.syncs.set(message.sync, sync);
    }
    sync.idle.refresh();
    if (sync.done || sync.workspace !== message.workspace) {
      this.fail(
        message.sync,
        ErrorCode.BadField,
        'sync parts disagree, or came after the last one',
      );
      return;
    }
    if (sync.entries.length + message.entries.length > this.limits.entriesPerSync) {
      this.fail(
        message.sync,
        ErrorCode.BadField,
        `a manifest may hold at most ${this.limits.entriesPerSync} entries`,
      );
      return;
    }
    if (!this.budget.take(message.entries.length)) {
      this.fail(
        message.sync,
        ErrorCode.Limit,
        `the agent holds ${this.budget.inFlight} manifest entries of unfinished syncs, at most ${this.budget.limit}; try again once they finish`,
      );
      return;
    }
    sync.entries.push(...message.entries);
    sync.preserve.push(...message.preserve);
    if (!message.last) return;
    sync.done = true;
    try {
      this.copies.dirOf(sync.workspace);
      this.copies.validate(sync.entries);
    } catch (err) {
      this.failWith(message.sync, err);
      return;
    }
    const sizes = new Map<string, number>();
    for (const e of sync.entries) if ('hash' in e) sizes.set(e.hash, e.size);
    const need = this.store.missing(sizes.keys());
    let bytes = 0;
    for (const hash of need) {
      const size = sizes.get(hash) ?? 0;
      bytes += size;
      sync.waiting.set(hash, { size, received: 0 });
    }
    const id = message.sync;
    // Each new blob lands twice: in the store and, copied, in the workspace.
    this.store
      .makeRoom(bytes, 2 * bytes, new Set(sizes.keys()))
      .then(() => this.busyFor(sync))
      .then(
        (busy) => {
          if (this.syncs.get(id) !== sync) return;
          this.connection.send({
            t: 'syncNeed',
            sync: id,
            hashes: need,
            ...(busy ? { busy } : {}),
          });
          this.maybeLayOut(id, sync);
        },
        (err: unknown) => this.failWith(id, err),
      );
  }

  private idleTimer(id: string): NodeJS.Timeout {
    const timer = setTimeout(
      () =>
        this.fail(
          id,
          ErrorCode.Timeout,
          `the sync made no progress for ${Math.round(this.limits.idleMs / 1000)} s`,
        ),
      this.limits.idleMs,
    );
    timer.unref();
    return timer;
  }

  blob(message: BlobMessage): void {
    if (this.failed.has(message.sync)) return;
    const sync = this.syncs.get(message.sync);
    const slot = sync?.waiting.get(message.hash);
    if (!sync || !slot) {
      this.fail(
        message.sync,
        ErrorCode.BadField,
        `blob ${message.hash.slice(0, 12)}… was not asked for`,
      );
      return;
    }
    if (
      message.offset !== slot.received ||
      message.size !== slot.size ||
      slot.received + message.data.byteLength > slot.size
    ) {
      this.fail(
        message.sync,
        ErrorCode.BadContent,
        `blob ${message.hash.slice(0, 12)}… arrived out of order or over its size`,
      );
      return;
    }
    sync.idle.refresh();
    const whole = !slot.writer && message.data.byteLength === slot.size;
    if (!whole) {
      slot.writer ??= this.store.writer(message.hash, slot.size);
      slot.writer.write(message.data);
    }
    slot.received += message.data.byteLength;
    if (slot.received < slot.size) return;
    const stored = whole
      ? this.store.put(message.hash, message.data)
      : (slot.writer as BlobWriter).finish();
    stored.then(
      () => {
        if (this.syncs.get(message.sync) !== sync) {
          // The sync failed while this blob was being written: it goes too.
          sync.added = new Set([message.hash]);
          this.removeAdded(sync);
          return;
        }
        sync.added.add(message.hash);
        sync.waiting.delete(message.hash);
        this.maybeLayOut(message.sync, sync);
      },
      (err: Error) =>
        isOctaskError(err)
          ? this.fail(message.sync, err.code, err.message)
          : this.fail(message.sync, ErrorCode.BadContent, err.message),
    );
  }

  /** The connection is gone: drop unfinished syncs, their half-received blobs and their memory. */
  close(): void {
    for (const id of [...this.syncs.keys()]) this.drop(id, true);
  }

  /** Ends a pending sync: stops its timer, returns its entries to the budget, aborts its writers. */
  private drop(id: string, removeAdded: boolean): PendingSync | undefined {
    const sync = this.syncs.get(id);
    if (!sync) return undefined;
    this.syncs.delete(id);
    clearTimeout(sync.idle);
    this.budget.give(sync.entries.length);
    for (const slot of sync.waiting.values()) slot.writer?.abort();
    if (removeAdded) this.removeAdded(sync);
    return sync;
  }

  /** Removes the blobs a failed sync stored, except those another open sync of this connection needs. */
  private removeAdded(sync: PendingSync): void {
    if (sync.added.size === 0) return;
    const inUse = new Set<string>();
    for (const other of this.syncs.values())
      for (const e of other.entries) if ('hash' in e) inUse.add(e.hash);
    for (const hash of sync.added)
      if (!inUse.has(hash))
        this.store
          .remove(hash)
          .catch((err: unknown) => this.logger.warn('blob removal failed', { err }));
  }

  private maybeLayOut(id: string, sync: PendingSync): void {
    if (!sync.done || sync.waiting.size > 0) return;
    this.drop(id, false);
    const started = performance.now();
    // Checked whole in part(), before any blob was asked for.
    this.layOutWhenFree(sync).then(
      ({ written, removed, kept, waitedMs }) => {
        this.logger.info('workspace synced', {
          workspace: sync.workspace,
          files: sync.entries.length,
          written,
          removed,
          kept,
          waitedMs,
          ms: Math.round(performance.now() - started),
        });
        this.connection.send({
          t: 'syncDone',
          sync: id,
          written,
          removed,
          ...(kept !== undefined ? { kept } : {}),
          ...(waitedMs > 0 ? { waitedMs } : {}),
        });
        // The copy now holds its own files, so the store may drop old blobs, never this workspace's.
        const keep = new Set(sync.entries.flatMap((e) => ('hash' in e ? [e.hash] : [])));
        this.store
          .evict(keep)
          .catch((err: unknown) => this.logger.warn('store eviction failed', { err }));
      },
      (err: unknown) => {
        // The copy could not be laid out (a full disk, say): what this sync stored goes.
        this.removeAdded(sync);
        this.failWith(id, err);
      },
    );
  }

  /** Tasks the layout of `sync` would have to wait for now (0: none, or it changes nothing). */
  private async busyFor(sync: PendingSync): Promise<number> {
    const running = this.users.tasksIn(sync.workspace);
    if (running === 0) return 0;
    if (sync.clean) return running;
    return (await this.copies.matches(sync.workspace, sync.entries).catch(() => false))
      ? 0
      : running;
  }

  /**
   * Lays out the copy, but never underneath a running task of its
   * workspace: a copy that already matches is left as it is while tasks
   * run; one that would change waits for them.
   */
  private async layOutWhenFree(
    sync: PendingSync,
  ): Promise<{ written: number; removed: number; kept?: number; waitedMs: number }> {
    const { workspace } = sync;
    if (
      !sync.clean &&
      this.users.tasksIn(workspace) > 0 &&
      (await this.copies.matches(workspace, sync.entries))
    )
      return { written: 0, removed: 0, waitedMs: 0 };
    const layout = { validated: true, clean: sync.clean };
    const { result, waitedMs } = await this.users.layOut(workspace, () =>
      this.copies.layOut(workspace, sync.entries, sync.preserve, layout),
    );
    return { ...result, waitedMs };
  }

  private failWith(id: string, err: unknown): void {
    const coded = asNoSpace(err as Error, undefined, this.store.freeBytes());
    if (isOctaskError(coded)) this.fail(id, coded.code, coded.message);
    else this.fail(id, ErrorCode.BadPath, (err as Error).message);
  }

  private fail(id: string, code: string, message: string): void {
    this.drop(id, true);
    if (this.failed.size > 1000) this.failed.clear();
    this.failed.add(id);
    this.logger.warn('sync failed', { sync: id, code, message });
    this.connection.send({ t: 'syncFailed', sync: id, code, message });
  }
}
