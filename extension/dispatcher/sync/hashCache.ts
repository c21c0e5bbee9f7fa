/**
 * SHA-256 of file contents, remembered by (path, size, mtime, ctime, inode)
 * so that an unchanged workspace is stat'ed, not re-read. The cache lives in
 * one file chosen by the caller (its form is HashRows'); a missing, old or
 * corrupt file just means starting empty, since every entry can be
 * recomputed.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { sha256Hex } from '../../../shared/sha256';
import type { Stats } from 'node:fs';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Row } from './hashRows';
import { HashRows } from './hashRows';
import { dirname } from 'node:path';

/** What identifies one version of a file without reading it. */
export interface FileStamp {
  size: number;
  mtimeMs: number;
  /** Changes on any write or rename, even when a tool restores the mtime. */
  ctimeMs: number;
  ino: number;
}

export interface HashResult {
  hash: string;
  /** The stamp of the content actually hashed (may differ from the one asked about). */
  stamp: FileStamp;
  /** The bytes hashed, when the caller asked to keep them (hashFileSync's `keep`). */
  data?: Buffer;
}

export interface HashCacheOptions {
  /**
   * Files modified less than this long before being hashed are not
   * remembered: a second write within the file system's timestamp
   * granularity would leave the stamp unchanged ("racily clean" in git).
   */
  racyWindowMs?: number;
  /**
   * Keep the bytes of small files read for hashing, up to this many in
   * all, so that a sync right after sends them without reading each file
   * again (the CLI's one-shot first sync). 0, the default: keep none.
   */
  keepBytes?: number;
}

/** Files up to this size may be kept (and are read in one call). */
export const KEEP_FILE_MAX = 256 * 1024;

const CHUNK_BYTES = 256 * 1024;
/**
 * Files up to this size are hashed with synchronous calls in one go: for
 * source trees (mostly small files) a thread-pool round trip per call costs
 * far more than the read. Bigger ones are read asynchronously, in chunks.
 */
export const SYNC_HASH_MAX_BYTES = 1024 * 1024;
/** Times a file that changes while being hashed is retried before giving up. */
const MAX_ATTEMPTS = 3;

function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino;
}

function rowStamp([size, mtimeMs, ctimeMs, ino]: Row): FileStamp {
  return { size, mtimeMs, ctimeMs, ino };
}

function stampOf(s: FileStamp): FileStamp {
  return { size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino };
}

// O_NOFOLLOW: a file swapped for a symlink after listing is not followed out
// of the workspace. O_NONBLOCK: one swapped for a FIFO cannot hang the open.
// Both are undefined on Windows, where neither risk applies the same way.
export const OPEN_FLAGS =
  constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

async function hashOpenFile(handle: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, null);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
  }
  return hash.digest('hex');
}

/** Hash one regular file, reading it in chunks; the stamp is taken from the open file. */
export async function hashFile(path: string): Promise<HashResult> {
  for (let attempt = 1; ; attempt++) {
    const handle = await open(path, OPEN_FLAGS);
    try {
      const before = await handle.stat();
      if (!before.isFile()) throw new Error(`${path} is no longer a regular file`);
      const hash = await hashOpenFile(handle);
      const after = await handle.stat();
      if (sameStamp(before, after)) return { hash, stamp: stampOf(after) };
      if (attempt >= MAX_ATTEMPTS) throw new Error(`${path} kept changing while being hashed`);
    } finally {
      await handle.close();
    }
  }
}

/** One buffer for every synchronous read: the reads never overlap. */
let syncBuffer: Buffer | undefined;

/**
 * hashFile with synchronous calls, for a file of at most `maxBytes`
 * (checked on the open file); null when it is bigger, to be hashed with
 * hashFile instead. Same flags, same before/after check, same retries.
 */
export function hashFileSync(
  path: string,
  maxBytes = SYNC_HASH_MAX_BYTES,
  /** Return the bytes too (`data`) if the file is at most this size. */
  keep = 0,
): HashResult | null {
  const opened = openAndHash(path, maxBytes, keep);
  if (!opened.stats.isFile()) throw new Error(`${path} is no longer a regular file`);
  return opened.result;
}

/**
 * Opens `path` (never through a symlink at its end: ELOOP), and hashes it
 * when it is a regular file of at most `maxBytes`. `stats` is the open
 * file's, so a caller that has not lstat'ed the path learns its type here.
 */
function openAndHash(
  path: string,
  maxBytes: number,
  keep: number,
): { stats: Stats; result: HashResult | null } {
  syncBuffer ??= Buffer.allocUnsafe(CHUNK_BYTES);
  for (let attempt = 1; ; attempt++) {
    const fd = openSync(path, OPEN_FLAGS);
    try {
      const before = fstatSync(fd);
      if (!before.isFile() || before.size > maxBytes) return { stats: before, result: null };
      // A kept file is read into a buffer of its own (one more byte: a file
      // that grew since the fstat reads past its old size, and so is not kept).
      const kept = before.size <= Math.min(keep, KEEP_FILE_MAX);
      const buffer = kept ? Buffer.allocUnsafe(before.size + 1) : syncBuffer;
      // A file read whole (kept, or in one read) is hashed in one call;
      // only one read in pieces needs a Hash object.
      let hash: Hash | undefined;
      let whole: Buffer | undefined;
      let total = 0;
      // Read up to the size the fstat gave, not on to the end: the fstat
      // after says whether the file changed meanwhile, and for a small file
      // the read that finds the end would be a third of the calls.
      while (total < before.size) {
        const at = kept ? total : 0;
        const bytesRead = readSync(fd, buffer, at, buffer.length - at, null);
        if (bytesRead === 0) break;
        if (!kept) {
          const chunk = buffer.subarray(0, bytesRead);
          if (total === 0 && bytesRead >= before.size) whole = chunk;
          else (hash ??= createHash('sha256')).update(chunk);
        }
        total += bytesRead;
      }
      const digest = kept
        ? sha256Hex(buffer.subarray(0, total))
        : whole
          ? sha256Hex(whole)
          : (hash ?? createHash('sha256')).digest('hex');
      const after = fstatSync(fd);
      if (sameStamp(before, after) && total === after.size)
        return {
          stats: after,
          result: {
            hash: digest,
            stamp: stampOf(after),
            ...(kept ? { data: buffer.subarray(0, total) } : {}),
          },
        };
      if (attempt >= MAX_ATTEMPTS) throw new Error(`${path} kept changing while being hashed`);
    } finally {
      closeSync(fd);
    }
  }
}

export class HashCache {
  private readonly rows: HashRows;
  private dirty = false;
  private readonly racyWindowMs: number;
  /** Bytes of files read for hashing (keepBytes), by hash; what is left of the budget. */
  readonly kept = new Map<string, Buffer>();
  private keepLeft: number;
  /** Lookups answered from the cache, and files actually read, since loading. */
  hits = 0;
  misses = 0;

  private constructor(
    private readonly file: string | null,
    rows: HashRows,
    options: HashCacheOptions,
  ) {
    this.rows = rows;
    this.racyWindowMs = options.racyWindowMs ?? 2000;
    this.keepLeft = options.keepBytes ?? 0;
  }

  /** The cache stored at `file` (null: in memory only); empty if it is missing or unreadable. */
  static async load(file: string | null, options: HashCacheOptions = {}): Promise<HashCache> {
    const rows = file === null ? HashRows.empty() : await readRows(file);
    return new HashCache(file, rows, options);
  }

  get size(): number {
    return this.rows.size;
  }

  /**
   * The hash of the regular file at absolute `path`, whose lstat gave
   * `stamp`: from the cache if the stamp matches, else by reading the file.
   */
  async hash(path: string, stamp: FileStamp): Promise<HashResult> {
    const known = this.lookup(path, stamp);
    if (known) return known;
    this.misses++;
    const started = Date.now();
    const result = hashFileSync(path) ?? (await hashFile(path));
    this.remember(path, result, started);
    return result;
  }

  /**
   * `hash` without waiting: from the cache, or read at once when the file
   * is small; null for a bigger file, which the caller passes to `hash`.
   */
  hashSync(path: string, stamp: FileStamp): HashResult | null {
    const known = this.lookup(path, stamp);
    if (known) return known;
    const started = Date.now();
    const result = hashFileSync(path, SYNC_HASH_MAX_BYTES, this.keepLeft);
    return result && this.took(path, result, started);
  }

  /**
   * For a path the cache has no row for (a first sync: most of them), the
   * lstat that a cache lookup needs is skipped: the file is opened at once
   * and its fstat gives the type. `stats` is undefined when the path is
   * not simply a file to open (a symlink, a folder, gone): the caller then
   * lstats it as for any path. `result` is null for a regular file too
   * big to hash synchronously.
   */
  hashUnseen(path: string): { stats?: Stats; result: HashResult | null } {
    if (this.rows.get(path)) return { result: null };
    const started = Date.now();
    let opened: { stats: Stats; result: HashResult | null };
    try {
      opened = openAndHash(path, SYNC_HASH_MAX_BYTES, this.keepLeft);
    } catch (err) {
      // A symlink (ELOOP) or anything else: left to the lstat, which says what it is.
      if ((err as NodeJS.ErrnoException).code) return { result: null };
      throw err;
    }
    if (!opened.stats.isFile()) return { result: null };
    return {
      stats: opened.stats,
      result: opened.result && this.took(path, opened.result, started),
    };
  }

  /** Counts, keeps and remembers a file just read. */
  private took(path: string, result: HashResult, started: number): HashResult {
    this.misses++;
    if (result.data) {
      this.keepLeft -= result.data.byteLength;
      this.kept.set(result.hash, result.data);
    }
    this.remember(path, result, started);
    return { hash: result.hash, stamp: result.stamp };
  }

  private lookup(path: string, stamp: FileStamp): HashResult | null {
    const row = this.rows.get(path);
    if (row && sameStamp(rowStamp(row), stamp)) {
      this.hits++;
      return { hash: row[4], stamp: stampOf(stamp) };
    }
    return null;
  }

  /** Start a new round of use: the next pruneUnused forgets paths not asked about from now on. */
  resetUsage(): void {
    this.rows.resetUsage();
  }

  private isRacy(stamp: FileStamp, started: number): boolean {
    if (this.racyWindowMs <= 0) return false;
    return Math.min(started - stamp.mtimeMs, started - stamp.ctimeMs) < this.racyWindowMs;
  }

  private remember(path: string, { hash, stamp }: HashResult, started: number): void {
    if (this.isRacy(stamp, started)) {
      // Too fresh to trust; and an older row for this path is now wrong.
      if (this.rows.delete(path)) this.dirty = true;
      return;
    }
    this.rows.set(path, [stamp.size, stamp.mtimeMs, stamp.ctimeMs, stamp.ino, hash]);
    this.dirty = true;
  }

  /** Forget paths not asked about since loading (files deleted or no longer synced). */
  pruneUnused(): void {
    if (this.rows.pruneUnused()) this.dirty = true;
  }

  /** Write the cache if it changed: to a temporary file, then renamed over, so it is never torn. */
  async save(): Promise<void> {
    if (this.file === null || !this.dirty) return;
    await writeAtomically(this.file, this.rows.encode());
    this.dirty = false;
  }
}

async function readRows(file: string): Promise<HashRows> {
  try {
    // Read whole, then decoded at once: readFile with an encoding decodes chunk by chunk.
    return HashRows.decode((await readFile(file)).toString('utf8'));
  } catch {
    return HashRows.empty();
  }
}

async function writeAtomically(file: string, content: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, content, { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
