/**
 * SHA-256 of file contents, remembered by (path, size, mtime, ctime, inode)
 * so that an unchanged workspace is stat'ed, not re-read. The cache lives in
 * one JSON file chosen by the caller; a missing or corrupt file just means
 * starting empty, since every entry can be recomputed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
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
}

export interface HashCacheOptions {
  /**
   * Files modified less than this long before being hashed are not
   * remembered: a second write within the file system's timestamp
   * granularity would leave the stamp unchanged ("racily clean" in git).
   */
  racyWindowMs?: number;
  /** Files hashed at once. */
  concurrency?: number;
}

const FORMAT_VERSION = 1;
const CHUNK_BYTES = 256 * 1024;
/** Times a file that changes while being hashed is retried before giving up. */
const MAX_ATTEMPTS = 3;

type Row = [size: number, mtimeMs: number, ctimeMs: number, ino: number, hash: string];

function isRow(v: unknown): v is Row {
  return (
    Array.isArray(v) &&
    v.length === 5 &&
    v.slice(0, 4).every((n) => typeof n === 'number' && Number.isFinite(n)) &&
    typeof v[4] === 'string' &&
    /^[0-9a-f]{64}$/.test(v[4])
  );
}

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
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

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

/** Run `fn` over `items` with at most `limit` calls in flight; results keep their order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

export class HashCache {
  private readonly rows: Map<string, Row>;
  private readonly used = new Set<string>();
  private dirty = false;
  private readonly racyWindowMs: number;
  readonly concurrency: number;
  /** Lookups answered from the cache, and files actually read, since loading. */
  hits = 0;
  misses = 0;

  private constructor(
    private readonly file: string | null,
    rows: Map<string, Row>,
    options: HashCacheOptions,
  ) {
    this.rows = rows;
    this.racyWindowMs = options.racyWindowMs ?? 2000;
    this.concurrency = options.concurrency ?? 16;
  }

  /** The cache stored at `file` (null: in memory only); empty if it is missing or unreadable. */
  static async load(file: string | null, options: HashCacheOptions = {}): Promise<HashCache> {
    const rows = file === null ? new Map<string, Row>() : await readRows(file);
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
    this.used.add(path);
    const row = this.rows.get(path);
    if (row && sameStamp(rowStamp(row), stamp)) {
      this.hits++;
      return { hash: row[4], stamp: stampOf(stamp) };
    }
    this.misses++;
    const started = Date.now();
    const result = await hashFile(path);
    this.remember(path, result, started);
    return result;
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
    for (const path of this.rows.keys()) {
      if (!this.used.has(path)) {
        this.rows.delete(path);
        this.dirty = true;
      }
    }
  }

  /** Write the cache if it changed: to a temporary file, then renamed over, so it is never torn. */
  async save(): Promise<void> {
    if (this.file === null || !this.dirty) return;
    const json = JSON.stringify({ version: FORMAT_VERSION, rows: Object.fromEntries(this.rows) });
    await writeAtomically(this.file, json);
    this.dirty = false;
  }
}

async function readRows(file: string): Promise<Map<string, Row>> {
  const rows = new Map<string, Row>();
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    return rows;
  }
  if (typeof parsed !== 'object' || parsed === null) return rows;
  const { version, rows: stored } = parsed as { version?: unknown; rows?: unknown };
  if (version !== FORMAT_VERSION || typeof stored !== 'object' || stored === null) return rows;
  for (const [path, row] of Object.entries(stored)) {
    if (isRow(row)) rows.set(path, row);
  }
  return rows;
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
