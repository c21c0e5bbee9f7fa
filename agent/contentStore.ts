import { createHash } from 'node:crypto';
import type { WriteStream } from 'node:fs';
import * as fs from 'node:fs';
import { createWriteStream, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { rename, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, OctaskError } from '../shared/errors';

const HASH = /^[0-9a-f]{64}$/;

function isContentHash(text: string): boolean {
  return HASH.test(text);
}

interface BlobInfo {
  size: number;
  /** Last use, epoch ms: the least recently used blob is evicted first. */
  used: number;
}

/** Receives one blob in chunks; nothing is visible in the store until `finish` checked its hash. */
export interface BlobWriter {
  write(chunk: Uint8Array): boolean;
  /** Resolves once the blob is in the store; rejects (and keeps nothing) if the bytes do not match the hash. */
  finish(): Promise<void>;
  abort(): void;
}

/**
 * Files by content: `DIR/ab/abcdef…` named by their sha256. Blobs are
 * written to a temporary name and renamed into place only after their
 * digest matches, so the store never holds a blob under a wrong name.
 * Size-capped, least recently used first out.
 */
export class ContentStore {
  private readonly blobs = new Map<string, BlobInfo>();
  private total = 0;
  private tmpCounter = 0;
  /** Prefix folders known to exist, so each is made once. */
  private readonly prefixes = new Set<string>();

  constructor(
    private readonly dir: string,
    private readonly capBytes: number,
    /** Blobs used more recently than this are not touched again: a touch is a syscall per blob. */
    private readonly touchAfterMs = 3600_000,
  ) {
    // Half-written blobs of a process that died hold space no index knows of.
    rmSync(join(dir, 'tmp'), { recursive: true, force: true });
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    this.loadIndex();
  }

  /** Bytes free on the store's file system for this process, or undefined where statfs is missing (Node < 18.15). */
  freeBytes(): number | undefined {
    const statfs = (fs as { statfsSync?: (path: string) => { bavail: number; bsize: number } })
      .statfsSync;
    if (!statfs) return undefined;
    try {
      const st = statfs(this.dir);
      return st.bavail * st.bsize;
    } catch {
      return undefined;
    }
  }

  /**
   * Evicts least recently used blobs (never `keep`) until `storeBytes` more
   * fit under the cap and `diskBytes` fit on the disk. The cap yields to a
   * workspace larger than it (as after a sync); the disk does not: if even
   * evicting all it may does not free `diskBytes`, this throws E_NO_SPACE
   * saying how much was needed and how much is free.
   */
  async makeRoom(storeBytes: number, diskBytes: number, keep: ReadonlySet<string>): Promise<void> {
    const diskFits = (): boolean => {
      const free = this.freeBytes();
      return free === undefined || free >= diskBytes;
    };
    const fits = (): boolean => this.total + storeBytes <= this.capBytes && diskFits();
    if (fits()) return;
    const order = [...this.blobs.entries()]
      .filter(([h]) => !keep.has(h))
      .sort((a, b) => a[1].used - b[1].used);
    for (const [hash] of order) {
      await this.remove(hash);
      if (fits()) return;
    }
    if (!diskFits()) throw noSpace(diskBytes, this.freeBytes());
  }

  /** Drops one blob (a failed sync's, or an evicted one); a missing one is no error. */
  async remove(hash: string): Promise<void> {
    const info = this.blobs.get(hash);
    if (!info) return;
    this.blobs.delete(hash);
    this.total -= info.size;
    await rm(this.pathOf(hash), { force: true });
  }

  get size(): number {
    return this.total;
  }

  has(hash: string): boolean {
    return this.blobs.has(hash);
  }

  /** The hashes of `wanted` that the store lacks, each once. */
  missing(wanted: Iterable<string>): string[] {
    const out = new Set<string>();
    for (const h of wanted) if (!this.blobs.has(h)) out.add(h);
    return [...out];
  }

  pathOf(hash: string): string {
    if (!isContentHash(hash)) throw new Error(`not a content hash: ${hash.slice(0, 80)}`);
    return join(this.dir, hash.slice(0, 2), hash);
  }

  /** Marks blobs as just used, so eviction spares them longest. */
  touch(hashes: Iterable<string>): void {
    const now = Date.now();
    for (const h of hashes) {
      const info = this.blobs.get(h);
      if (!info || now - info.used < this.touchAfterMs) continue;
      info.used = now;
      // The file's mtime carries the order across restarts; losing one is harmless.
      utimes(this.pathOf(h), now / 1000, now / 1000).catch(() => undefined);
    }
  }

  writer(hash: string, size: number): BlobWriter {
    const path = this.pathOf(hash);
    const tmp = join(this.dir, 'tmp', `${process.pid}-${++this.tmpCounter}`);
    const digest = createHash('sha256');
    const out: WriteStream = createWriteStream(tmp, { mode: 0o444 });
    let written = 0;
    let failed: Error | undefined;
    out.on('error', (err) => (failed ??= err));
    return {
      write: (chunk) => {
        digest.update(chunk);
        written += chunk.byteLength;
        return out.write(chunk);
      },
      finish: async () => {
        await new Promise<void>((resolve) => out.end(resolve));
        const actual = digest.digest('hex');
        if (failed || actual !== hash || written !== size) {
          await rm(tmp, { force: true });
          if (failed) throw asNoSpace(failed, size, this.freeBytes());
          throw new Error(
            `blob ${hash.slice(0, 12)}… did not match: got ${written} bytes hashing to ${actual.slice(0, 12)}…`,
          );
        }
        this.ensurePrefix(hash);
        await rename(tmp, path);
        this.added(hash, size);
      },
      abort: () => {
        out.destroy();
        rm(tmp, { force: true }).catch(() => undefined);
      },
    };
  }

  /**
   * Stores a blob that arrived whole (most do: one frame holds 1 MiB): one
   * write and a rename, instead of a stream's open, writes and close.
   */
  async put(hash: string, data: Uint8Array): Promise<void> {
    const actual = createHash('sha256').update(data).digest('hex');
    if (actual !== hash) {
      throw new Error(
        `blob ${hash.slice(0, 12)}… did not match: got ${data.byteLength} bytes hashing to ${actual.slice(0, 12)}…`,
      );
    }
    if (this.blobs.has(hash)) return;
    const tmp = join(this.dir, 'tmp', `${process.pid}-${++this.tmpCounter}`);
    try {
      await writeFile(tmp, data, { mode: 0o444 });
    } catch (err) {
      await rm(tmp, { force: true });
      throw asNoSpace(err as Error, data.byteLength, this.freeBytes());
    }
    this.ensurePrefix(hash);
    await rename(tmp, this.pathOf(hash));
    this.added(hash, data.byteLength);
  }

  private ensurePrefix(hash: string): void {
    const prefix = hash.slice(0, 2);
    if (this.prefixes.has(prefix)) return;
    mkdirSync(join(this.dir, prefix), { recursive: true });
    this.prefixes.add(prefix);
  }

  private added(hash: string, size: number): void {
    if (!this.blobs.has(hash)) this.total += size;
    this.blobs.set(hash, { size, used: Date.now() });
  }

  /** Removes least recently used blobs until the store fits its cap; `keep` are never removed. */
  async evict(keep: ReadonlySet<string> = new Set()): Promise<number> {
    if (this.total <= this.capBytes) return 0;
    const order = [...this.blobs.entries()]
      .filter(([h]) => !keep.has(h))
      .sort((a, b) => a[1].used - b[1].used);
    let removed = 0;
    for (const [hash] of order) {
      if (this.total <= this.capBytes) break;
      removed++;
      await this.remove(hash);
    }
    return removed;
  }

  private loadIndex(): void {
    for (const prefix of readdirSync(this.dir)) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      for (const name of readdirSync(join(this.dir, prefix))) {
        if (!isContentHash(name) || !name.startsWith(prefix)) continue;
        const st = statSync(join(this.dir, prefix, name));
        this.blobs.set(name, { size: st.size, used: st.mtimeMs });
        this.total += st.size;
      }
    }
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** E_NO_SPACE with the figures a user needs to act: needed and free on disk. */
export function noSpace(needed: number | undefined, free: number | undefined): OctaskError {
  const needText =
    needed === undefined
      ? 'the workspace copy did not fit'
      : `needs ${mib(needed)} (${needed} bytes)`;
  const freeText = free === undefined ? 'free space unknown' : `${mib(free)} free on disk`;
  return new OctaskError(
    ErrorCode.NoSpace,
    `no space for the sync: ${needText}, ${freeText} after evicting old synced files; free disk space on the agent`,
  );
}

/** A write error as E_NO_SPACE when the disk (or quota) is full; others unchanged. */
export function asNoSpace(err: Error, needed: number | undefined, free: number | undefined): Error {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? noSpace(needed, free) : err;
}
