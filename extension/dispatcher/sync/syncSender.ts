import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { BLOB_CHUNK, sendBlobs } from '../../../shared/blobSender';
import { ErrorCode, OctaskError } from '../../../shared/errors';
import type { FrameConnection } from '../../../shared/frameConnection';
import type { DispatcherBound, ManifestEntry } from '../../../shared/protocol';
import { MAX_FRAME_BYTES } from '../../../shared/protocol';
import { OPEN_FLAGS } from './hashCache';
import type { ManifestDelta } from '../../../shared/manifestDelta';
import type { PreparedWorkspace } from './preparedWorkspace';
import { sourcesOf } from './preparedWorkspace';
import type { FeedHeader, WorkspaceFeed } from './workspaceFeed';

/**
 * Bytes of manifest per `sync` frame, counted as an upper bound (a path's
 * UTF-8 is at most three bytes per UTF-16 unit; 48 for its hash, size and
 * mode): half the frame cap. A source tree of 10,000 files is one frame.
 */
const MANIFEST_BYTES_PER_FRAME = MAX_FRAME_BYTES / 2;
const ENTRY_BYTES = 48;

/** The manifest cut into runs of entries that each fit a frame. */
export function framesOf(entries: readonly ManifestEntry[]): Array<[number, number]> {
  const frames: Array<[number, number]> = [];
  let start = 0;
  let bytes = 0;
  entries.forEach((e, i) => {
    const size = ENTRY_BYTES + 3 * (e.path.length + ('link' in e ? e.link.length : 0));
    if (i > start && bytes + size > MANIFEST_BYTES_PER_FRAME) {
      frames.push([start, i]);
      start = i;
      bytes = 0;
    }
    bytes += size;
  });
  frames.push([start, entries.length]);
  return frames;
}

export interface SyncStats {
  files: number;
  filesSent: number;
  bytesSent: number;
  /** Files the agent removed from its copy, and task-made files it kept. */
  removed: number;
  kept: number;
  /** How long the agent waited for its tasks in the copy before laying it out. */
  waitedMs: number;
  ms: number;
}

/**
 * A small regular file's bytes, or undefined when it is gone or no longer
 * `size` bytes of a file. Opened as the hash cache opens files: a file
 * swapped for a link since the manifest was made is not followed (its
 * target could be any file of the user's), nor does a FIFO hang the read.
 */
function readWhole(path: string, size: number): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size !== size) return undefined;
    const data = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < size) {
      const n = readSync(fd, data, at, size - at, at);
      if (n === 0) return undefined;
      at += n;
    }
    return data;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The figures of a sync that did not happen (it failed). */
export function noSyncStats(files: number): SyncStats {
  return { files, filesSent: 0, bytesSent: 0, removed: 0, kept: 0, waitedMs: 0, ms: 0 };
}

/** How a streamed sync ends when the agent would not take it streamed (it has a copy): the caller syncs as usual. */
const NOT_STREAMED = 'the agent has a copy of the workspace already: not streamed';

/**
 * Brings one agent's copy of a workspace up to date: sends the manifest,
 * then only the blobs the agent's store lacks, then waits for the layout.
 * Fed the agent's sync replies through `receive`. Given a feed instead of
 * a prepared workspace, it streams a first sync while the workspace is
 * hashed (`stream`).
 */
export class SyncSender {
  readonly id = randomBytes(6).toString('hex');
  private resolveNeed!: (hashes: string[]) => void;
  /** Settled by the answer to `syncCheck`: true when the agent's copy is stale and needs the manifest. */
  private resolveStale!: (stale: boolean) => void;
  private readonly stale: Promise<boolean>;
  private finish!: (result: SyncStats | OctaskError) => void;
  private readonly needed: Promise<string[]>;
  readonly done: Promise<SyncStats | OctaskError>;
  private readonly started = performance.now();
  private filesSent = 0;
  private bytesSent = 0;
  /** What the agent asked for, once it answered. */
  private toSend = { files: 0, bytes: 0 };
  /** The layout the agent offered as a base in its `syncStale`. */
  private base: string | undefined;
  /** Settled: `done` has its outcome. */
  private over = false;
  /**
   * A streamed sync's last part waits for this: a task of the workspace was
   * placed on the agent. A run refused before that (a bad cwd) never has its
   * copy laid out; the agent drops what it staged with the connection.
   */
  private readonly placed: Promise<void>;
  private place!: () => void;
  /** The agent's `syncStale` took the sync streamed. */
  private streamTaken = false;
  /** The workspace synced; for a streamed sync, once hashing is over. */
  private prepared: PreparedWorkspace | undefined;
  private readonly feed: WorkspaceFeed | undefined;

  constructor(
    private readonly connection: FrameConnection,
    workspace: PreparedWorkspace | WorkspaceFeed,
    private readonly onProgress?: (bytes: number) => void,
    /** The agent will lay out the copy only once this many running tasks of it end. */
    private readonly onBusy?: (tasks: number) => void,
  ) {
    if ('entriesDigest' in workspace) this.prepared = workspace;
    else this.feed = workspace;
    this.needed = new Promise((resolve) => (this.resolveNeed = resolve));
    this.placed = new Promise((resolve) => (this.place = resolve));
    this.stale = new Promise((resolve) => (this.resolveStale = resolve));
    this.done = new Promise(
      (resolve) =>
        (this.finish = (result) => {
          this.over = true;
          resolve(result);
        }),
    );
  }

  /** Contents sent so far, and how many the agent asked for (for progress). */
  get progress(): { filesSent: number; bytesSent: number; files: number; bytes: number } {
    return { filesSent: this.filesSent, bytesSent: this.bytesSent, ...this.toSend };
  }

  /** The workspace this sync lays out: from the start, or for a streamed sync once hashing is over. */
  get synced(): PreparedWorkspace | undefined {
    return this.prepared;
  }

  /** The workspace synced: known from the start, or for a streamed sync once hashing is over. */
  private get workspace(): PreparedWorkspace {
    if (!this.prepared) throw new Error('the streamed workspace is not prepared yet');
    return this.prepared;
  }

  /** The workspace's folder, for messages (known before hashing ends). */
  private get root(): string {
    return this.prepared?.root ?? this.feed?.header?.root ?? '';
  }

  /** A task that needs this streamed sync was placed on the agent: the copy may be laid out. */
  taskPlaced(): void {
    this.place();
  }

  /** Runs the sync; the outcome (stats or error) arrives on `done`. */
  start(): Promise<SyncStats | OctaskError> {
    void this.run();
    return this.done;
  }

  /** A reply from the agent for this sync. */
  receive(message: DispatcherBound): void {
    if (message.t === 'syncStale') {
      this.base = message.base;
      this.streamTaken = message.stream === true;
      this.resolveStale(true);
    } else if (message.t === 'syncNeed') {
      if (message.busy) this.onBusy?.(message.busy);
      this.resolveNeed(message.hashes);
    } else if (message.t === 'syncDone') {
      this.resolveStale(false);
      if (!this.prepared) {
        this.finish(new OctaskError(ErrorCode.BadField, 'the agent ended a streamed sync early'));
        return;
      }
      this.finish({
        files: this.prepared.entryCount,
        filesSent: this.filesSent,
        bytesSent: this.bytesSent,
        removed: message.removed,
        kept: message.kept ?? 0,
        waitedMs: message.waitedMs ?? 0,
        ms: Math.round(performance.now() - this.started),
      });
    } else if (message.t === 'syncFailed') {
      this.resolveStale(false);
      this.finish(
        new OctaskError(
          message.code as ErrorCode,
          `sync of ${this.root} failed: ${message.message}`,
        ),
      );
    }
  }

  /** The connection went away mid-sync. */
  abort(): void {
    this.resolveStale(false);
    this.resolveNeed([]);
    this.finish(new OctaskError(ErrorCode.Unreachable, 'the agent went away during the sync'));
  }

  private async run(): Promise<void> {
    const changed = this.feed ? await this.stream(this.feed) : await this.announce();
    if (changed === undefined) return;
    const hashes = await this.needed;
    // What a delta asks for is almost always among what it changed: the whole manifest is then not needed.
    let sources = sourcesOf(changed, this.workspace.root, hashes);
    if (sources.size < hashes.length) {
      if (!(await this.loaded())) return;
      sources = sourcesOf(this.workspace.entries, this.workspace.root, hashes);
    }
    // A streamed sync has sent contents before it was asked for the rest.
    this.toSend = {
      files: this.filesSent + hashes.length,
      bytes: this.bytesSent + hashes.reduce((n, h) => n + (sources.get(h)?.size ?? 0), 0),
    };
    const missing = await sendBlobs(
      this.connection,
      this.id,
      hashes,
      async (hash) => {
        const kept = this.workspace.contents?.get(hash);
        if (kept) {
          this.filesSent++;
          return { size: kept.byteLength, data: kept };
        }
        const source = sources.get(hash);
        if (!source) return undefined;
        const { path, size: expected } = source;
        this.filesSent++;
        // Most files fit one frame: read at once, synchronously (a queued
        // async open, stat, read and close cost more than the read itself for
        // a small file). A size other than the manifest's makes the agent
        // refuse the blob, and the sync says the file changed.
        if (expected <= BLOB_CHUNK) {
          const data = readWhole(path, expected);
          return data && { size: data.byteLength, data };
        }
        const { size } = await stat(path);
        return { size, chunks: createReadStream(path, { highWaterMark: BLOB_CHUNK }) };
      },
      (bytes) => {
        this.bytesSent += bytes;
        this.onProgress?.(bytes);
      },
    );
    this.reportMissing(missing, sources);
  }

  /**
   * Tells the agent what this sync is: asks by digest first (most syncs
   * change nothing), then sends what differs from the base it offered, or
   * the whole manifest. The entries a delta changed (where what is asked
   * for is found), or undefined when the sync is over.
   */
  private async announce(): Promise<readonly ManifestEntry[] | undefined> {
    // The manifest (640 KB for 10,000 files) goes only to an agent whose
    // copy differs. A clean copy is always laid out (what tasks made must go).
    if (!this.workspace.clean) {
      this.connection.send({
        t: 'syncCheck',
        sync: this.id,
        workspace: this.workspace.id,
        digest: this.workspace.entriesDigest,
      });
      if (!(await this.stale)) return undefined;
    }
    const delta = this.sendDelta();
    if (!delta) {
      if (!(await this.loaded())) return undefined;
      this.sendManifest();
    }
    return delta?.changed ?? [];
  }

  /**
   * A first sync sent while the workspace is hashed: the agent is asked
   * whether it takes it streamed (it does when it has no copy, so nothing
   * there could be reused); then each batch of entries the hashing made
   * goes as a `sync` part, followed by the contents it lists first (kept
   * from hashing, or read now), and once hashing is over the rest, with
   * the manifest's digest, as the last part. The agent writes the files while
   * the rest are hashed. Undefined when the sync is over (the agent
   * declined: NOT_STREAMED).
   */
  private async stream(feed: WorkspaceFeed): Promise<readonly ManifestEntry[] | undefined> {
    const header = feed.header;
    if (!header) throw new Error('a feed streams once it is open');
    this.connection.send({ t: 'syncCheck', sync: this.id, workspace: header.id });
    if (!(await this.stale)) return undefined;
    if (!this.streamTaken) {
      this.finish(new OctaskError(ErrorCode.BadField, NOT_STREAMED));
      return undefined;
    }
    const pushed = new Set<string>();
    let sent = 0;
    let first = true;
    for (;;) {
      await new Promise<void>((resolve) => {
        if (feed.ended !== undefined || feed.entries.length > sent) resolve();
        else {
          const off = feed.on(() => {
            off();
            resolve();
          });
        }
      });
      // Failed (the agent refused a part, or its disk is full): nothing more is sent.
      if (this.connection.isClosed || this.over) return undefined;
      const ended = feed.ended;
      if (ended instanceof Error) {
        // The run fails on its own; the agent drops the sync with the connection, or once idle.
        this.finish(new OctaskError(ErrorCode.BadContent, ended.message));
        return undefined;
      }
      const batch = feed.entries.slice(sent);
      sent += batch.length;
      if (ended && ended.entryCount !== sent) {
        this.finish(
          new OctaskError(ErrorCode.BadField, 'the streamed entries are not the manifest'),
        );
        return undefined;
      }
      // Each part's contents go right after it (a blob may not come before
      // the part that lists it); a small file the hashing did not read (its
      // hash was in the cache) is read now, a big one waits to be asked for.
      const push = new Map<string, { path: string; size: number }>();
      for (const e of batch)
        if ('hash' in e && !pushed.has(e.hash) && e.size <= BLOB_CHUNK) {
          pushed.add(e.hash);
          push.set(e.hash, { path: `${header.root}/${e.path}`, size: e.size });
        }
      if (batch.length > 0)
        for (const [from, to] of framesOf(batch)) {
          this.sendPart(header, batch.slice(from, to), first, undefined);
          first = false;
        }
      if (push.size > 0)
        await sendBlobs(
          this.connection,
          this.id,
          [...push.keys()],
          async (hash) => {
            const source = push.get(hash);
            const data =
              header.contents.get(hash) ?? (source && readWhole(source.path, source.size));
            if (!data) return undefined;
            this.filesSent++;
            return { size: data.byteLength, data };
          },
          (bytes) => {
            this.bytesSent += bytes;
            // Until the agent asks for the rest, the whole workspace is what may be sent.
            const whole = feed.ended instanceof Error ? undefined : feed.ended;
            this.toSend = {
              files: Math.max(this.filesSent, whole?.entryCount ?? 0),
              bytes: Math.max(this.bytesSent, whole?.bytes ?? 0),
            };
            this.onProgress?.(bytes);
          },
        );
      if (ended) {
        // Empty, after every content pushed, and once a task is placed.
        await this.placed;
        if (this.connection.isClosed || this.over) return undefined;
        this.sendPart(header, [], first, ended);
        this.prepared = ended;
        return [];
      }
    }
  }

  /** One part of a streamed sync; the last one (`ended`) names the manifest's digest. */
  private sendPart(
    header: FeedHeader,
    entries: ManifestEntry[],
    first: boolean,
    ended: PreparedWorkspace | undefined,
  ): void {
    this.connection.send({
      t: 'sync',
      sync: this.id,
      workspace: header.id,
      entries,
      preserve: first ? [...header.preserve] : [],
      last: ended !== undefined,
      ...(first && header.clean ? { clean: true } : {}),
      ...(ended ? { digest: ended.entriesDigest } : {}),
    });
  }

  /** Contents that could not be read fail the sync: the workspace changed while it was sent. */
  private reportMissing(
    missing: readonly string[],
    sources: ReadonlyMap<string, { path: string }>,
  ): void {
    if (missing.length > 0) {
      const path = sources.get(missing[0] ?? '')?.path ?? missing[0];
      this.finish(
        new OctaskError(
          ErrorCode.BadContent,
          `${path} changed or vanished while it was being synced; run again`,
        ),
      );
    }
  }

  /** The whole manifest, in as many `sync` frames as it needs. */
  private sendManifest(): void {
    const { entries } = this.workspace;
    const frames = framesOf(entries);
    frames.forEach(([from, to], i) => {
      const whole = frames.length === 1;
      this.connection.send({
        t: 'sync',
        sync: this.id,
        workspace: this.workspace.id,
        entries: whole ? entries : entries.slice(from, to),
        ...(whole && this.workspace.columns ? { columns: this.workspace.columns } : {}),
        preserve: i === 0 ? this.workspace.preserve : [],
        last: i === frames.length - 1,
        ...(i === 0 && this.workspace.clean ? { clean: true } : {}),
      });
    });
  }

  /**
   * Only what differs from the layout the agent offered, when this
   * workspace remembers that manifest and the difference fits one frame:
   * a one-file change then sends one entry, not the whole manifest.
   */
  private sendDelta(): ManifestDelta | undefined {
    const delta = this.base === undefined ? undefined : this.workspace.deltaFrom?.(this.base);
    if (!delta || this.base === undefined) return undefined;
    const removed = delta.removed.reduce((n, p) => n + ENTRY_BYTES + 3 * p.length, 0);
    if (removed > MANIFEST_BYTES_PER_FRAME / 2 || framesOf(delta.changed).length > 1)
      return undefined;
    this.connection.send({
      t: 'sync',
      sync: this.id,
      workspace: this.workspace.id,
      entries: delta.changed,
      preserve: this.workspace.preserve,
      last: true,
      base: this.base,
      removed: delta.removed,
      digest: this.workspace.entriesDigest,
    });
    return delta;
  }

  /** The manifest's entries are there (fetched if need be); false when they could not be, and the sync failed. */
  private async loaded(): Promise<boolean> {
    if (!this.workspace.loadEntries) return true;
    try {
      await this.workspace.loadEntries();
      return true;
    } catch (err) {
      this.finish(
        new OctaskError(
          ErrorCode.BadContent,
          `the manifest of ${this.workspace.root} could not be read: ${(err as Error).message}`,
        ),
      );
      return false;
    }
  }
}
