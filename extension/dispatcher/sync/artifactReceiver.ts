import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, readlinkSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfinedTree, linkOnDisk, TEMP_PREFIX } from '../../../shared/confinedFs';
import type { Logger } from '../../../shared/logger';
import type { ManifestFile, ManifestLink } from '../../../shared/manifest';
import type { BlobMessage, ManifestEntry } from '../../../shared/protocol';
import { hashFile } from './hashCache';
import { checkRelativePath, depthOf, resolveLink } from '../../../shared/workspacePath';

export interface ArtifactStats {
  files: number;
  bytes: number;
  /** Artifacts not written, each with why (shown to the user as warnings). */
  skipped: Array<{ path: string; reason: string }>;
}

interface Incoming {
  tmp: string;
  out: WriteStream;
  digest: ReturnType<typeof createHash>;
  received: number;
  size: number;
}

/** Most passes when refusing one link changes how the others resolve. */
const MAX_LINK_PASSES = 8;

/**
 * Brings a finished task's artifacts into the local workspace: works out
 * which differ from what is already here, receives only those, checks each
 * against its hash, and writes it at its path. The agent (and the task on
 * it) is less trusted than this machine, so every write goes through a
 * ConfinedTree (no symlink in the workspace is ever followed, temporary
 * files get exclusive random names), and a symlink is placed only if it
 * stays inside the workspace through every link it ships with and every
 * link already here. What it cannot place it skips, with a warning.
 */
export class ArtifactReceiver {
  private readonly incoming = new Map<string, Incoming>();
  private readonly byHash = new Map<string, ManifestFile[]>();
  private readonly writes: Array<Promise<void>> = [];
  private readonly skipped: ArtifactStats['skipped'] = [];
  private readonly tree: ConfinedTree;
  private files = 0;
  private bytes = 0;

  constructor(
    private readonly root: string,
    private readonly entries: readonly ManifestEntry[],
    private readonly logger: Logger,
  ) {
    this.tree = new ConfinedTree(root, { replaceNonFolders: false });
  }

  /** Places symlinks and returns the content hashes to fetch (those not already at their paths). */
  async plan(): Promise<string[]> {
    const need = new Set<string>();
    const valid = this.entries.filter((e) => {
      const bad = checkRelativePath(e.path);
      if (bad) this.skip(e.path, bad);
      return !bad;
    });
    const links = this.acceptedLinks(
      valid.flatMap((e) => ('link' in e ? [e] : [])),
      new Set(valid.flatMap((e) => ('hash' in e ? [e.path] : []))),
    );
    for (const e of valid) {
      if ('link' in e) {
        if (links.has(e.path)) await this.placeLink(e);
        continue;
      }
      if (!this.parentIsSafe(e.path)) continue;
      if (await sameContent(this.tree.entry(e.path), e.size, e.hash)) continue;
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
      // 'wx': created here, exclusively (never through a link the agent placed).
      const tmp = join(
        this.tree.folder(''),
        `${TEMP_PREFIX}${randomBytes(12).toString('hex')}.tmp`,
      );
      inc = {
        tmp,
        out: createWriteStream(tmp, { mode: 0o600, flags: 'wx' }),
        digest: createHash('sha256'),
        received: 0,
        size: message.size,
      };
      inc.out.on('error', (err) => this.logger.warn(`artifact not received: ${err.message}`));
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
    for (const hash of missing) {
      for (const e of this.byHash.get(hash) ?? [])
        this.skip(e.path, 'its content could not be fetched');
    }
    await Promise.all(this.writes);
    for (const inc of this.incoming.values()) {
      inc.out.destroy();
      await rm(inc.tmp, { force: true });
    }
    this.tree.close();
    return { files: this.files, bytes: this.bytes, skipped: this.skipped };
  }

  /**
   * The artifact links that may be placed. A link is refused when it leads
   * outside through the others or the links already here, or when it points
   * to a folder shallower than itself (a file arriving with it is fine: a
   * file is never passed through): such a link would change where other
   * links (already here, or arriving later) lead, so that `a/up -> ..` plus
   * `esc -> a/up/../..` could climb out. Refusing one link can change how
   * the rest resolve, so the check repeats until nothing changes.
   */
  private acceptedLinks(links: readonly ManifestLink[], files: ReadonlySet<string>): Set<string> {
    const accepted = new Map(links.map((l) => [l.path, l.link]));
    const lookup = (path: string): string | undefined =>
      accepted.get(path) ?? linkOnDisk(this.root, path);
    for (let pass = 0; pass < MAX_LINK_PASSES; pass++) {
      let changed = false;
      for (const l of links) {
        if (!accepted.has(l.path)) continue;
        const resolved = resolveLink(l.path, l.link, lookup);
        const why =
          resolved === null
            ? `it is a symlink to ${JSON.stringify(l.link)}, leading outside the workspace`
            : depthOf(resolved) < depthOf(l.path) && !files.has(resolved)
              ? `it is a symlink to a folder above itself (${JSON.stringify(l.link)}), which could lead other links out of the workspace`
              : null;
        if (why === null) continue;
        accepted.delete(l.path);
        this.skip(l.path, why);
        changed = true;
      }
      if (!changed) return new Set(accepted.keys());
    }
    for (const l of links)
      if (accepted.has(l.path)) this.skip(l.path, 'its symlink chain is too tangled to check');
    return new Set();
  }

  private async placeLink(e: ManifestLink): Promise<void> {
    if (!this.parentIsSafe(e.path)) return;
    const current = this.tree.lstat(e.path);
    if (current?.isSymbolicLink() && readlinkSync(this.tree.entry(e.path)) === e.link) return;
    if (current?.isDirectory()) {
      this.skip(e.path, 'a folder is in the way');
      return;
    }
    await this.tree.linkIn(e.path, e.link);
    this.files++;
  }

  private async place(hash: string, inc: Incoming): Promise<void> {
    this.incoming.delete(hash);
    await new Promise<void>((resolve) => inc.out.end(resolve));
    try {
      if (inc.digest.digest('hex') !== hash) {
        for (const e of this.byHash.get(hash) ?? [])
          this.skip(e.path, 'its content did not match its hash');
        return;
      }
      for (const e of this.byHash.get(hash) ?? []) {
        if (!this.parentIsSafe(e.path)) continue;
        try {
          await this.tree.copyIn(inc.tmp, e.path, e.mode);
        } catch (err) {
          this.skip(e.path, (err as Error).message);
          continue;
        }
        this.files++;
        this.bytes += e.size;
      }
    } finally {
      await rm(inc.tmp, { force: true });
    }
  }

  /** Makes the folders above `rel`, refusing (with a warning) to pass through a symlink or a file. */
  private parentIsSafe(rel: string): boolean {
    const cut = rel.lastIndexOf('/');
    if (cut === -1) return true;
    try {
      this.tree.folder(rel.slice(0, cut));
      return true;
    } catch (err) {
      this.skip(rel, (err as Error).message);
      return false;
    }
  }

  private skip(path: string, reason: string): void {
    if (this.skipped.some((s) => s.path === path)) return;
    this.skipped.push({ path, reason });
    this.logger.warn(`artifact ${JSON.stringify(path)} not brought back: ${reason}`);
  }
}

async function sameContent(path: string, size: number, hash: string): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile() || st.size !== size) return false;
  return (await hashFile(path)).hash === hash;
}
