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

/**
 * Brings one agent's copy of a workspace up to date: sends the manifest,
 * then only the blobs the agent's store lacks, then waits for the layout.
 * Fed the agent's sync replies through `receive`.
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

  constructor(
    private readonly connection: FrameConnection,
    private readonly workspace: PreparedWorkspace,
    private readonly onProgress?: (bytes: number) => void,
    /** The agent will lay out the copy only once this many running tasks of it end. */
    private readonly onBusy?: (tasks: number) => void,
  ) {
    this.needed = new Promise((resolve) => (this.resolveNeed = resolve));
    this.stale = new Promise((resolve) => (this.resolveStale = resolve));
    this.done = new Promise((resolve) => (this.finish = resolve));
  }

  /** Contents sent so far, and how many the agent asked for (for progress). */
  get progress(): { filesSent: number; bytesSent: number; files: number; bytes: number } {
    return { filesSent: this.filesSent, bytesSent: this.bytesSent, ...this.toSend };
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
      this.resolveStale(true);
    } else if (message.t === 'syncNeed') {
      if (message.busy) this.onBusy?.(message.busy);
      this.resolveNeed(message.hashes);
    } else if (message.t === 'syncDone') {
      this.resolveStale(false);
      this.finish({
        files: this.workspace.entryCount,
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
          `sync of ${this.workspace.root} failed: ${message.message}`,
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
    // Most syncs change nothing: ask by digest first, and send the manifest
    // (640 KB for 10,000 files) only to an agent whose copy differs. A clean
    // copy is always laid out (what tasks made must go).
    if (!this.workspace.clean) {
      this.connection.send({
        t: 'syncCheck',
        sync: this.id,
        workspace: this.workspace.id,
        digest: this.workspace.entriesDigest,
      });
      if (!(await this.stale)) return;
    }
    const delta = this.sendDelta();
    if (!delta) {
      if (!(await this.loaded())) return;
      this.sendManifest();
    }
    const hashes = await this.needed;
    // What a delta asks for is almost always among what it changed: the whole manifest is then not needed.
    let sources = sourcesOf(delta?.changed ?? [], this.workspace.root, hashes);
    if (sources.size < hashes.length) {
      if (!(await this.loaded())) return;
      sources = sourcesOf(this.workspace.entries, this.workspace.root, hashes);
    }
    this.toSend = {
      files: hashes.length,
      bytes: hashes.reduce((n, h) => n + (sources.get(h)?.size ?? 0), 0),
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
