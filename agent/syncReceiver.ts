import { ErrorCode, isOctaskError } from '../shared/errors';
import type { FrameConnection } from '../shared/frameConnection';
import { applyDelta } from '../shared/manifestDelta';
import { manifestDigest } from '../shared/manifestDigest';
import type { Logger } from '../shared/logger';
import type { BlobMessage, ManifestEntry, SyncCheckMessage, SyncMessage } from '../shared/protocol';
import type { BlobStaging, BlobWriter } from './blobStaging';
import { CopyUsers } from './copyUsers';
import { asNoSpace, freeBytes, noSpace } from './diskSpace';
import type { SyncPlan, WorkspaceCopies } from './workspaceCopy';

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
  /** Where the blobs are staged beside the copy; discarded (with them) if the sync fails. */
  staging?: BlobStaging;
  /** manifestDigest of the entries, once needed. */
  digest?: string;
  /** The mode each asked-for content is staged with. */
  modes: Map<string, number>;
  /** What the layout needs, as the copy was when the blobs were asked for. */
  plan?: { plan: SyncPlan; changes: number };
  done: boolean;
  /** The manifest came as changes from an offered base (protocol 6): how many entries were sent. */
  delta?: number;
  /**
   * Streamed (protocol 7): each part's contents arrive unasked after it.
   * `coming`: bytes of the contents expected and not yet written (for the
   * disk check); `parts`: how many parts came; `asked`: contents that did
   * not come unasked, asked for once the manifest was whole.
   */
  streamed?: { coming: number; parts: number; asked: number };
  /** Drops the sync once it stops making progress. */
  idle: NodeJS.Timeout;
}

/** The first path of each needed content, in manifest order. */
function firstPaths(
  entries: readonly ManifestEntry[],
  need: ReadonlyMap<string, number>,
): Map<string, string> {
  const places = new Map<string, string>();
  for (const e of entries)
    if ('hash' in e && need.has(e.hash) && !places.has(e.hash)) places.set(e.hash, e.path);
  return places;
}

/**
 * One dispatcher connection's syncs: answers checks of a copy by its
 * digest, gathers manifest parts, asks for the blobs the copy lacks, checks
 * each against its hash as it stages it, and lays out the copy once
 * everything is there. Any failure ends that sync with `syncFailed` and
 * leaves the copy as it was.
 */
export class SyncReceiver {
  private readonly syncs = new Map<string, PendingSync>();
  /**
   * The layout each `syncStale` offered as a base, by sync id, until its
   * `sync` comes: the delta is applied to this manifest even if another
   * layout replaced it meanwhile (the plan then looks at the copy as it is).
   */
  private readonly offered = new Map<
    string,
    { workspace: string; digest: string; entries: readonly ManifestEntry[] }
  >();
  /** Syncs that failed: their late blobs are dropped quietly (one syncFailed is enough). */
  private readonly failed = new Set<string>();
  /**
   * Sync ids a probe (`syncCheck` without digest) accepted as streamed,
   * with their workspace, until their first part comes; at most `openSyncs`.
   */
  private readonly streams = new Map<string, string>();

  constructor(
    private readonly connection: FrameConnection,
    private readonly copies: WorkspaceCopies,
    private readonly logger: Logger,
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

  /** A `syncCheck`: `syncDone` when the copy is as asked, else `syncStale`; no manifest is needed. */
  check(message: SyncCheckMessage): void {
    const { workspace } = message;
    if (message.digest === undefined) {
      this.probe(message.sync, workspace);
      return;
    }
    const digest = message.digest;
    const started = performance.now();
    const answer = async (): Promise<{ kept?: number } | undefined> =>
      // A layout in progress (another dispatcher's) is about to change the record: send the manifest.
      this.users.layingOut(workspace)
        ? undefined
        : this.copies.check(workspace, digest, {
            changes: this.users.changes(workspace),
            busy: this.users.tasksIn(workspace) > 0,
          });
    answer().then(
      (same) => {
        if (!same) {
          // At most one offer per open sync a connection may have: each pins a manifest.
          const base =
            this.offered.size < this.limits.openSyncs
              ? this.copies.lastLayout(workspace)
              : undefined;
          if (base) this.offered.set(message.sync, { workspace, ...base });
          this.connection.send({
            t: 'syncStale',
            sync: message.sync,
            ...(base ? { base: base.digest } : {}),
          });
          return;
        }
        this.logger.info('workspace checked', {
          workspace,
          ms: Math.round(performance.now() - started),
        });
        this.connection.send({
          t: 'syncDone',
          sync: message.sync,
          written: 0,
          removed: 0,
          ...(same.kept !== undefined ? { kept: same.kept } : {}),
        });
      },
      (err: unknown) => this.failWith(message.sync, err),
    );
  }

  /**
   * A `syncCheck` without digest: a dispatcher still hashing asks to stream
   * the sync. Taken when the agent has no copy of the workspace (nothing
   * in it could be reused) and no layout of it is under way.
   */
  private probe(sync: string, workspace: string): void {
    let stream: boolean;
    try {
      this.copies.dirOf(workspace);
      stream =
        this.streams.size < this.limits.openSyncs &&
        !this.users.layingOut(workspace) &&
        !this.copies.hasTree(workspace);
    } catch (err) {
      this.failWith(sync, err);
      return;
    }
    if (stream) this.streams.set(sync, workspace);
    this.connection.send({ t: 'syncStale', sync, ...(stream ? { stream: true } : {}) });
  }

  part(message: SyncMessage): void {
    if (this.failed.has(message.sync)) return;
    const offered = this.offered.get(message.sync);
    this.offered.delete(message.sync);
    let sync = this.syncs.get(message.sync);
    const streamed = this.streams.get(message.sync);
    this.streams.delete(message.sync);
    const streaming = sync ? sync.streamed !== undefined : streamed === message.workspace;
    const sent = message.entries.length;
    // A streamed sync's last part names its manifest's digest without a base.
    const delta =
      message.base !== undefined ||
      message.removed !== undefined ||
      (message.digest !== undefined && !streaming);
    if (delta) {
      const whole = this.wholeFromDelta(message, offered, sync !== undefined);
      if (typeof whole === 'string') {
        this.fail(message.sync, ErrorCode.BadField, whole);
        return;
      }
      message = whole;
    }
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
        modes: new Map(),
        done: false,
        ...(delta ? { delta: sent } : {}),
        ...(streaming ? { streamed: { coming: 0, parts: 0, asked: 0 } } : {}),
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
    if (message.digest !== undefined) sync.digest = message.digest;
    if (sync.streamed) {
      try {
        this.expect(sync, message.entries);
      } catch (err) {
        this.failWith(message.sync, err);
        return;
      }
    }
    if (!message.last) return;
    sync.done = true;
    if (sync.streamed) {
      const problem = this.wholeFromStream(sync);
      if (problem) {
        this.fail(message.sync, ErrorCode.BadField, problem);
        return;
      }
    }
    try {
      this.copies.dirOf(sync.workspace);
      this.copies.validate(sync.entries, sync.workspace, sync.streamed !== undefined);
    } catch (err) {
      this.failWith(message.sync, err);
      return;
    }
    void this.ask(message.sync, sync);
  }

  /**
   * A part of a streamed sync: its paths are checked, and the contents it
   * lists first are made ready to arrive, each staged at its first path
   * (nothing is laid out before the whole manifest is in and checked).
   */
  private expect(sync: PendingSync, entries: readonly ManifestEntry[]): void {
    const streamed = sync.streamed as NonNullable<PendingSync['streamed']>;
    streamed.parts++;
    this.copies.checkPaths(entries);
    const staging = (sync.staging ??= this.copies.staging(sync.workspace));
    for (const e of entries) {
      if (!('hash' in e) || sync.modes.has(e.hash)) continue;
      sync.modes.set(e.hash, e.mode);
      sync.waiting.set(e.hash, { size: e.size, received: 0 });
      staging.place(e.hash, e.path);
      streamed.coming += e.size;
    }
    const free = freeBytes(staging.dir);
    if (free !== undefined && free < streamed.coming) throw noSpace(streamed.coming, free);
  }

  /**
   * The manifest a streamed sync's parts make: sorted by path (as every
   * manifest is kept), and checked against the digest the last part names;
   * or why not.
   */
  private wholeFromStream(sync: PendingSync): string | undefined {
    if (sync.digest === undefined)
      return "a streamed sync's last part carries its manifest's digest";
    sync.entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    if (manifestDigest(sync.entries) !== sync.digest)
      return 'the parts sent do not make the manifest sync.digest names';
    return undefined;
  }

  /**
   * A `sync` that names a base: the whole manifest its changes make of the
   * layout offered for it, checked against the digest it names; or why not.
   */
  private wholeFromDelta(
    message: SyncMessage,
    offered: { workspace: string; digest: string; entries: readonly ManifestEntry[] } | undefined,
    begun: boolean,
  ): SyncMessage | string {
    if (message.base === undefined || message.digest === undefined)
      return 'sync.removed and sync.digest come with sync.base, and sync.base with sync.digest';
    if (begun || !message.last) return 'a sync with a base is one part, with last';
    if (offered?.digest !== message.base || offered.workspace !== message.workspace)
      return `sync.base ${message.base.slice(0, 12)}… is not the layout this agent offered for this sync`;
    const entries = applyDelta(offered.entries, {
      changed: message.entries,
      removed: message.removed ?? [],
    });
    if (typeof entries === 'string') return `sync.base: ${entries}`;
    if (manifestDigest(entries) !== message.digest)
      return 'the changes sent do not make the manifest sync.digest names';
    return { ...message, entries };
  }

  /** Works out what the copy lacks and asks for it (`syncNeed`), once the whole manifest is in. */
  private async ask(id: string, sync: PendingSync): Promise<void> {
    const { workspace } = sync;
    let bytes = 0;
    try {
      const changes = this.users.changes(workspace);
      const untouched = await this.copies.untouched(workspace, this.users.tasksIn(workspace) > 0);
      if (this.syncs.get(id) !== sync) return;
      const plan = this.copies.plan(workspace, sync.entries, untouched);
      sync.plan = { plan, changes };
      // A streamed sync's contents came unasked (or are on their way, if
      // the dispatcher did not have them at hand): only the rest is asked for.
      for (const [hash, slot] of sync.waiting)
        if (!plan.need.has(hash)) {
          slot.writer?.abort();
          sync.waiting.delete(hash);
        }
      for (const [hash, size] of plan.need) {
        if (sync.staging?.has(hash)) continue;
        bytes += size;
        if (!sync.waiting.has(hash)) sync.waiting.set(hash, { size, received: 0 });
      }
      // Staged with the mode of its first path, so laying it out there needs no chmod.
      for (const e of sync.entries)
        if ('hash' in e && !sync.modes.has(e.hash) && plan.need.has(e.hash))
          sync.modes.set(e.hash, e.mode);
      // Each content is written once (staged, then renamed into place), so this is all the disk it takes.
      const free = freeBytes(this.copies.folderOf(workspace));
      if (free !== undefined && free < bytes) throw noSpace(bytes, free);
      if (plan.need.size > 0 && !sync.streamed) {
        sync.staging = this.copies.staging(workspace);
        // A copy not on disk yet is built at its paths and renamed into place whole.
        if (plan.inPlace === 0 && plan.local.size === 0 && !this.copies.hasTree(workspace))
          sync.staging.placeAt(firstPaths(sync.entries, plan.need));
      }
      const busy = await this.busyFor(sync);
      if (this.syncs.get(id) !== sync) return;
      if (sync.streamed) sync.streamed.asked = sync.waiting.size;
      this.connection.send({
        t: 'syncNeed',
        sync: id,
        hashes: [...sync.waiting.keys()],
        ...(busy ? { busy } : {}),
      });
      this.maybeLayOut(id, sync);
    } catch (err) {
      this.failWith(id, err);
    }
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
    const staging = sync.staging as BlobStaging;
    try {
      if (!slot.writer && message.data.byteLength === slot.size) {
        staging.put(message.hash, message.data, sync.modes.get(message.hash));
      } else {
        slot.writer ??= staging.writer(message.hash, slot.size, sync.modes.get(message.hash));
        slot.writer.write(message.data);
        if (slot.received + message.data.byteLength === slot.size) slot.writer.finish();
      }
    } catch (err) {
      slot.writer = undefined;
      const coded = asNoSpace(err as Error, slot.size, freeBytes(staging.dir));
      if (isOctaskError(coded)) this.fail(message.sync, coded.code, coded.message);
      else this.fail(message.sync, ErrorCode.BadContent, coded.message);
      return;
    }
    slot.received += message.data.byteLength;
    if (sync.streamed) sync.streamed.coming -= message.data.byteLength;
    if (slot.received < slot.size) return;
    sync.waiting.delete(message.hash);
    this.maybeLayOut(message.sync, sync);
  }

  /** The connection is gone: drop unfinished syncs, their half-received blobs and their memory. */
  close(): void {
    this.offered.clear();
    this.streams.clear();
    for (const id of [...this.syncs.keys()]) this.drop(id, true);
  }

  /**
   * Ends a pending sync: stops its timer, returns its entries to the
   * budget, aborts its writers and, when it failed, removes what it staged.
   */
  private drop(id: string, failed: boolean): PendingSync | undefined {
    const sync = this.syncs.get(id);
    if (!sync) return undefined;
    this.syncs.delete(id);
    clearTimeout(sync.idle);
    this.budget.give(sync.entries.length);
    for (const slot of sync.waiting.values()) slot.writer?.abort();
    if (failed) sync.staging?.discard();
    return sync;
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
          ...(sync.delta !== undefined ? { delta: sync.delta } : {}),
          ...(sync.streamed ? { streamed: sync.streamed.parts, asked: sync.streamed.asked } : {}),
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
      },
      (err: unknown) => this.failWith(id, err),
    );
  }

  /** Tasks the layout of `sync` would have to wait for now (0: none, or it changes nothing). */
  private async busyFor(sync: PendingSync): Promise<number> {
    const running = this.users.tasksIn(sync.workspace);
    if (running === 0) return 0;
    if (sync.clean) return running;
    return this.copies.matchesDigest(sync.workspace, this.digestOf(sync)) ? 0 : running;
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
      this.copies.matchesDigest(workspace, this.digestOf(sync))
    ) {
      sync.staging?.discard();
      return { written: 0, removed: 0, waitedMs: 0 };
    }
    const { result, waitedMs } = await this.users.layOut(workspace, () =>
      this.copies.layOut(workspace, sync.entries, sync.preserve, {
        validated: true,
        clean: sync.clean,
        staging: sync.staging,
        plan: sync.plan,
        // Read once no task runs: a task since the plan means it is made again.
        changes: this.users.changes(workspace),
        digest: this.digestOf(sync),
      }),
    );
    return { ...result, waitedMs };
  }

  /** The sync's manifestDigest, computed once (10,000 entries: a few ms). */
  private digestOf(sync: PendingSync): string {
    sync.digest ??= manifestDigest(sync.entries);
    return sync.digest;
  }

  private failWith(id: string, err: unknown): void {
    const coded = asNoSpace(err as Error, undefined, undefined);
    if (isOctaskError(coded)) this.fail(id, coded.code, coded.message);
    else this.fail(id, ErrorCode.BadPath, (err as Error).message);
  }

  private fail(id: string, code: string, message: string): void {
    this.offered.delete(id);
    this.drop(id, true);
    if (this.failed.size > 1000) this.failed.clear();
    this.failed.add(id);
    this.logger.warn('sync failed', { sync: id, code, message });
    this.connection.send({ t: 'syncFailed', sync: id, code, message });
  }
}
