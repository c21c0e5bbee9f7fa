import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  copyFileSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import type { Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErrorCode, OctaskError } from '../shared/errors';
import { sha256Hex } from '../shared/sha256';
import { asNoSpace, freeBytes } from './diskSpace';

/** Receives one blob in chunks; nothing is named by its hash until `finish` checked it. */
export interface BlobWriter {
  write(chunk: Uint8Array): void;
  /** Throws (and keeps nothing) if the bytes do not match the hash. */
  finish(): void;
  abort(): void;
}

/** Created exclusively, so a file a task planted (or a link) is never written through. */
const CREATE = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL;

function mismatch(hash: string, bytes: number, actual: string): Error {
  return new Error(
    `blob ${hash.slice(0, 12)}… did not match: got ${bytes} bytes hashing to ${actual.slice(0, 12)}…`,
  );
}

let stagings = 0;

/** What a staged file is on disk: the layout records it without a stat of its own. */
export interface StagedStamp {
  size: number;
  mtimeMs: number;
  /** Permission bits it was created with (the umask may have narrowed them). */
  mode: number;
}

/**
 * The contents one sync brings, staged beside the copy they are for
 * (`NAME/incoming/N/`, on the copy's file system) and named by hash once
 * checked, or for a copy not yet on disk at their first path in `N/tree`
 * (placeAt). The layout then renames each into place (or that tree whole),
 * so a file's bytes are written on the agent once. Writes are synchronous:
 * a blob is at most one frame's chunk at a time, and a queue of async calls
 * costs more than the write itself for the small files most syncs carry.
 */
export class BlobStaging {
  /** The staging folder, by its plain path (see the constructor). */
  readonly dir: string;
  /**
   * The tree a copy made fresh is built in (`N/tree`), to be renamed into
   * place whole: a first sync then renames one folder instead of every file.
   */
  readonly treeDir: string;
  private readonly staged = new Map<string, StagedStamp>();
  private readonly buckets = new Set<string>();
  /** For a copy made fresh: where each content goes first, relative to `treeDir`. */
  private places = new Map<string, string>();
  /** Folders of `treeDir` this staging made, each by a mkdir of its own. */
  private readonly folders = new Set<string>();
  private tmpCounter = 0;
  private closed = false;

  /**
   * `copyDir` is the copy's own folder (`workspaces/NAME`), made if missing.
   *
   * The staging folder is used by its plain path, not through a
   * ConfinedTree's /proc/self/fd handle: creating a file through such a
   * handle costs ten times a plain create on Linux (measured: 10,000 files
   * in 2.9 s against 0.25 s), and this folder is not the copy. Its own name
   * is made exclusively, below folders that must be real ones; a task that
   * swapped one for a link in between could only make the agent write the
   * dispatcher's files where the task, of the same user, could write anyway.
   */
  constructor(private readonly copyDir: string) {
    mkdirSync(join(copyDir, 'incoming'), { recursive: true });
    for (const folder of [copyDir, join(copyDir, 'incoming')]) {
      if (!lstatSync(folder).isDirectory())
        throw new OctaskError(ErrorCode.BadPath, `${folder} is not a folder`);
    }
    this.dir = join(copyDir, 'incoming', `${process.pid}-${++stagings}`);
    this.treeDir = join(this.dir, 'tree');
    mkdirSync(this.dir, { mode: 0o700 });
  }

  /**
   * Where `path` (relative to `treeDir`, checked as a manifest path) is. A
   * concatenation: path.join's normalising is a tenth of a first sync's
   * time in JavaScript, and a checked path has nothing to normalise.
   */
  inTree(path: string): string {
    return path === '' ? this.treeDir : `${this.treeDir}/${path}`;
  }

  /**
   * Stage these contents at their (first) path in `treeDir` instead of by
   * hash: for a copy that does not exist yet. Call before any blob arrives.
   * Every folder on the way is made here, one mkdir each, never through
   * what already exists (a mkdir that finds something fails the sync).
   */
  placeAt(places: ReadonlyMap<string, string>): void {
    this.places = new Map(places);
  }

  /**
   * One more content to stage at its first path (a streamed sync learns
   * them part by part); a content placed already keeps its first place.
   * Call before that content's blob arrives.
   */
  place(hash: string, path: string): void {
    if (!this.places.has(hash)) this.places.set(hash, path);
  }

  /** Whether contents are staged at their paths (placeAt), so the layout can move the tree whole. */
  get placed(): boolean {
    return this.places.size > 0;
  }

  /** The path `treeDir`-relative where this content was staged, if it was placed. */
  placeOf(hash: string): string | undefined {
    return this.places.get(hash);
  }

  /** Makes the folders above `path` (relative to `treeDir`) that this staging has not made. */
  foldersAbove(path: string): void {
    this.folder(path.slice(0, Math.max(0, path.lastIndexOf('/'))));
  }

  /** Makes the folders of `rel` (a path relative to `treeDir`) that this staging has not made. */
  folder(rel: string): void {
    if (this.folders.has(rel)) return;
    if (rel !== '') this.foldersAbove(rel);
    mkdirSync(this.inTree(rel));
    this.folders.add(rel);
  }

  /** Removes what an earlier life of the agent left staged under `copyDir`. */
  static removeLeftovers(copyDir: string): void {
    rmSync(join(copyDir, 'incoming'), { recursive: true, force: true });
  }

  has(hash: string): boolean {
    return this.staged.has(hash);
  }

  /** The staged blob's size, mtime and mode, as written. */
  stampOf(hash: string): StagedStamp | undefined {
    return this.staged.get(hash);
  }

  /** Where a staged blob is (for the layout to rename or copy from). */
  pathOf(hash: string): string {
    const place = this.places.get(hash);
    if (place !== undefined) return this.inTree(place);
    return this.bucketPathOf(hash);
  }

  private bucketPathOf(hash: string): string {
    // Checked on the wire already; a name is made of it, so checked again here.
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`not a content hash: ${hash.slice(0, 80)}`);
    return join(this.dir, hash.slice(0, 2), hash);
  }

  /**
   * A fresh copy of a staged blob, for a content laid out at several paths
   * (each gets a file of its own): made here, where creating is cheap, and
   * moved in like the blob itself.
   */
  duplicate(hash: string): { path: string; stamp: StagedStamp } {
    const tmp = this.tempPath(hash);
    copyFileSync(this.pathOf(hash), tmp, fsConstants.COPYFILE_EXCL);
    const st = lstatSync(tmp);
    return { path: tmp, stamp: { size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o777 } };
  }

  /** The layout moved this blob into the copy. */
  moved(hash: string): void {
    this.staged.delete(hash);
  }

  /**
   * Stages a blob that arrived whole (most do: one frame holds 1 MiB),
   * checked before it is written; `mode` is the one it will have in the copy
   * (its first path's), so most need no chmod there.
   */
  put(hash: string, data: Uint8Array, mode = 0o600): void {
    const actual = sha256Hex(data);
    if (actual !== hash) throw mismatch(hash, data.byteLength, actual);
    if (this.staged.has(hash)) return;
    // Checked before it is written, so written under its own name at once:
    // a write cut short is removed here, or with the folder on failure or restart.
    const path = this.placedPath(hash) ?? join(this.bucketOf(hash), hash);
    try {
      const fd = openSync(path, CREATE, mode & 0o777);
      try {
        for (let at = 0; at < data.byteLength;) at += writeSync(fd, data, at, data.byteLength - at);
        this.staged.set(hash, stampOf(fstatSync(fd)));
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      this.staged.delete(hash);
      rmSync(path, { force: true });
      throw asNoSpace(err as Error, data.byteLength, freeBytes(this.copyDir));
    }
  }

  /** A writer for a blob that arrives in several chunks. */
  writer(hash: string, size: number, mode = 0o600): BlobWriter {
    const tmp = this.tempPath(hash);
    const digest: Hash = createHash('sha256');
    let fd: number | undefined = openSync(tmp, CREATE, mode & 0o777);
    let stamp: StagedStamp | undefined;
    let written = 0;
    const close = (): void => {
      if (fd === undefined) return;
      try {
        stamp = stampOf(fstatSync(fd));
      } finally {
        closeSync(fd);
        fd = undefined;
      }
    };
    const fail = (err: unknown): never => {
      close();
      rmSync(tmp, { force: true });
      throw asNoSpace(err as Error, size, freeBytes(this.copyDir));
    };
    return {
      write: (chunk) => {
        if (fd === undefined) return;
        digest.update(chunk);
        try {
          for (let at = 0; at < chunk.byteLength;)
            at += writeSync(fd, chunk, at, chunk.byteLength - at);
        } catch (err) {
          fail(err);
        }
        written += chunk.byteLength;
      },
      finish: () => {
        try {
          close();
        } catch (err) {
          fail(err);
        }
        const actual = digest.digest('hex');
        if (actual !== hash || written !== size || !stamp) {
          rmSync(tmp, { force: true });
          throw mismatch(hash, written, actual);
        }
        this.name(tmp, hash, stamp);
      },
      abort: () => {
        close();
        rmSync(tmp, { force: true });
      },
    };
  }

  /** Removes everything still staged and the folder itself. Safe to call twice. */
  discard(): void {
    if (this.closed) return;
    this.closed = true;
    rmSync(this.dir, { recursive: true, force: true });
    this.staged.clear();
  }

  /** A fresh name in the blob's bucket, for a blob written before it is checked. */
  private tempPath(hash: string): string {
    return join(this.bucketOf(hash), `part-${++this.tmpCounter}`);
  }

  /**
   * The blob's bucket folder, made on first use: contents are spread over up
   * to 256 folders by hash, since creating files in one folder that grows to
   * tens of thousands of entries costs more per file.
   */
  private bucketOf(hash: string): string {
    const bucket = dirname(this.bucketPathOf(hash));
    if (!this.buckets.has(bucket)) {
      mkdirSync(bucket, { mode: 0o700 });
      this.buckets.add(bucket);
    }
    return bucket;
  }

  private name(tmp: string, hash: string, stamp: StagedStamp): void {
    if (this.staged.has(hash)) {
      unlinkSync(tmp);
      return;
    }
    // On the staging's own file system: a rename, not a copy.
    renameSync(tmp, this.placedPath(hash) ?? this.pathOf(hash));
    this.staged.set(hash, stamp);
  }

  /** A placed content's path in `treeDir`, its folders made; undefined if it is staged by hash. */
  private placedPath(hash: string): string | undefined {
    const place = this.places.get(hash);
    if (place === undefined) return undefined;
    this.foldersAbove(place);
    return this.inTree(place);
  }
}

function stampOf(st: Stats): StagedStamp {
  return { size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o777 };
}
