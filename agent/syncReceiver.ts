import { ErrorCode, isOctaskError } from '../shared/errors';
import type { FrameConnection } from '../shared/frameConnection';
import type { Logger } from '../shared/logger';
import type { BlobMessage, ManifestEntry, SyncMessage } from '../shared/protocol';
import type { BlobWriter, ContentStore } from './contentStore';
import { CopyUsers } from './copyUsers';
import type { WorkspaceCopies } from './workspaceCopy';

/** Most manifest entries one sync may carry (10 parts of the largest frame's worth, roughly). */
const MAX_ENTRIES = 500_000;

interface PendingSync {
  workspace: string;
  entries: ManifestEntry[];
  preserve: string[];
  clean: boolean;
  /** Blobs still to arrive, by hash, with their writer once the first chunk came. */
  waiting: Map<string, { size: number; received: number; writer?: BlobWriter }>;
  done: boolean;
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
  ) {}

  part(message: SyncMessage): void {
    let sync = this.syncs.get(message.sync);
    if (!sync) {
      sync = {
        workspace: message.workspace,
        entries: [],
        preserve: [],
        clean: message.clean ?? false,
        waiting: new Map(),
        done: false,
      };
      this.syncs.set(message.sync, sync);
    }
    if (sync.done || sync.workspace !== message.workspace) {
      this.fail(
        message.sync,
        ErrorCode.BadField,
        'sync parts disagree, or came after the last one',
      );
      return;
    }
    sync.entries.push(...message.entries);
    sync.preserve.push(...message.preserve);
    if (sync.entries.length > MAX_ENTRIES) {
      this.fail(
        message.sync,
        ErrorCode.BadField,
        `a manifest may hold at most ${MAX_ENTRIES} entries`,
      );
      return;
    }
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
    for (const hash of need) sync.waiting.set(hash, { size: sizes.get(hash) ?? 0, received: 0 });
    const id = message.sync;
    void this.busyFor(sync).then((busy) => {
      this.connection.send({ t: 'syncNeed', sync: id, hashes: need, ...(busy ? { busy } : {}) });
      this.maybeLayOut(id, sync);
    });
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
        sync.waiting.delete(message.hash);
        this.maybeLayOut(message.sync, sync);
      },
      (err: Error) => this.fail(message.sync, ErrorCode.BadContent, err.message),
    );
  }

  /** The connection is gone: drop half-received blobs. */
  close(): void {
    for (const sync of this.syncs.values())
      for (const slot of sync.waiting.values()) slot.writer?.abort();
    this.syncs.clear();
  }

  private maybeLayOut(id: string, sync: PendingSync): void {
    if (!sync.done || sync.waiting.size > 0) return;
    this.syncs.delete(id);
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
      (err: unknown) => this.failWith(id, err),
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
    if (isOctaskError(err)) this.fail(id, err.code, err.message);
    else this.fail(id, ErrorCode.BadPath, (err as Error).message);
  }

  private fail(id: string, code: string, message: string): void {
    const sync = this.syncs.get(id);
    if (sync) for (const slot of sync.waiting.values()) slot.writer?.abort();
    this.syncs.delete(id);
    if (this.failed.size > 1000) this.failed.clear();
    this.failed.add(id);
    this.logger.warn('sync failed', { sync: id, code, message });
    this.connection.send({ t: 'syncFailed', sync: id, code, message });
  }
}
