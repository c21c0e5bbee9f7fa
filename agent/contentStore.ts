import { createHash } from 'node:crypto';
import type { WriteStream } from 'node:fs';
import { createWriteStream, mkdirSync, readdirSync, statSync } from 'node:fs';
import { rename, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    this.loadIndex();
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
          if (failed) throw failed;
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
    await writeFile(tmp, data, { mode: 0o444 });
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
    for (const [hash, info] of order) {
      if (this.total <= this.capBytes) break;
      this.blobs.delete(hash);
      this.total -= info.size;
      removed++;
      await rm(this.pathOf(hash), { force: true });
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
