import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../../shared/logger';
import type { BlobMessage, ManifestEntry } from '../../../shared/protocol';
import { hashFile } from './hashCache';
import { checkRelativePath, isInsideWorkspace } from '../../../shared/workspacePath';

export interface ArtifactStats {
  files: number;
  bytes: number;
}

interface Incoming {
  tmp: string;
  out: WriteStream;
  digest: ReturnType<typeof createHash>;
  received: number;
  size: number;
}

/**
 * Brings a finished task's artifacts into the local workspace: works out
 * which differ from what is already here, receives only those, checks each
 * against its hash, and writes it at its path. Never writes outside the
 * workspace or through a symlink; what it cannot place it skips with a warning.
 */
export class ArtifactReceiver {
  private readonly incoming = new Map<string, Incoming>();
  private readonly byHash = new Map<string, ManifestEntry[]>();
  private readonly writes: Array<Promise<void>> = [];
  private files = 0;
  private bytes = 0;

  constructor(
    private readonly root: string,
    private readonly entries: readonly ManifestEntry[],
    private readonly logger: Logger,
  ) {}

  /** Places symlinks and returns the content hashes to fetch (those not already at their paths). */
  async plan(): Promise<string[]> {
    const need = new Set<string>();
    for (const e of this.entries) {
      const bad = checkRelativePath(e.path);
      if (bad) {
        this.logger.warn(`artifact ${JSON.stringify(e.path)} skipped: ${bad}`);
        continue;
      }
      if (!(await this.safeParent(e.path))) continue;
      const target = join(this.root, e.path);
      if ('link' in e) {
        if (!isInsideWorkspace(e.path, e.link)) {
          this.logger.warn(
            `artifact ${e.path} skipped: it is a symlink leading outside the workspace`,
          );
          continue;
        }
        const current = await lstat(target).catch(() => undefined);
        if (current?.isSymbolicLink() && (await readlink(target)) === e.link) continue;
        if (current?.isDirectory()) continue;
        await rm(target, { force: true });
        await symlink(e.link, target);
        this.files++;
        continue;
      }
      if (await sameContent(target, e.size, e.hash)) continue;
      need.add(e.hash);
      const list = this.byHash.get(e.hash) ?? [];
      list.push(e);
      this.byHash.set(e.hash, list);
    }
    return [...need];
  }

  blob(message: BlobMessage): void {
    let inc = this.incoming.get(message.hash);
    if (!inc) {
      if (!this.byHash.has(message.hash) || message.offset !== 0) return;
      const tmp = join(this.root, `.octask-artifact-${message.hash.slice(0, 16)}.tmp`);
      inc = {
        tmp,
        out: createWriteStream(tmp, { mode: 0o600 }),
        digest: createHash('sha256'),
        received: 0,
        size: message.size,
      };
      this.incoming.set(message.hash, inc);
    }
    if (message.offset !== inc.received) return;
    inc.digest.update(message.data);
    inc.out.write(message.data);
    inc.received += message.data.byteLength;
    if (inc.received >= inc.size) this.writes.push(this.place(message.hash, inc));
  }

  /** Called on `fetchDone`: resolves once every received file is in place. */
  async finish(missing: readonly string[]): Promise<ArtifactStats> {
    for (const hash of missing)
      this.logger.warn(`artifact content ${hash.slice(0, 12)}… could not be fetched`);
    await Promise.all(this.writes);
    for (const inc of this.incoming.values()) {
      inc.out.destroy();
      await rm(inc.tmp, { force: true });
    }
    return { files: this.files, bytes: this.bytes };
  }

  private async place(hash: string, inc: Incoming): Promise<void> {
    this.incoming.delete(hash);
    await new Promise<void>((resolve) => inc.out.end(resolve));
    try {
      if (inc.digest.digest('hex') !== hash) {
        this.logger.warn(
          `artifact content ${hash.slice(0, 12)}… did not match its hash; not written`,
        );
        return;
      }
      for (const e of this.byHash.get(hash) ?? []) {
        if (!('hash' in e) || !(await this.safeParent(e.path))) continue;
        const target = join(this.root, e.path);
        const current = await lstat(target).catch(() => undefined);
        if (current?.isDirectory()) {
          this.logger.warn(`artifact ${e.path} skipped: a folder is in the way`);
          continue;
        }
        const tmp = `${target}.octask-tmp`;
        await copyFile(inc.tmp, tmp);
        await chmod(tmp, e.mode & 0o777);
        await rename(tmp, target);
        this.files++;
        this.bytes += e.size;
      }
    } finally {
      await rm(inc.tmp, { force: true });
    }
  }

  /** Makes the folders above `rel`, refusing to pass through a symlink or a file. */
  private async safeParent(rel: string): Promise<boolean> {
    const parts = rel.split('/').slice(0, -1);
    let at = this.root;
    for (const part of parts) {
      at = join(at, part);
      const st = await lstat(at).catch(() => undefined);
      if (!st) {
        await mkdir(at);
        continue;
      }
      if (!st.isDirectory() || st.isSymbolicLink()) {
        this.logger.warn(
          `artifact ${rel} skipped: ${at} is not a folder (a symlink or a file is in the way)`,
        );
        return false;
      }
    }
    return true;
  }
}

async function sameContent(path: string, size: number, hash: string): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile() || st.size !== size) return false;
  return (await hashFile(path)).hash === hash;
}
