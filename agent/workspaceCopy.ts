import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ConfinedTree, linkOnDisk } from '../shared/confinedFs';
import { ErrorCode, OctaskError } from '../shared/errors';
import { matchesAnyGlob } from '../shared/glob';
import type { ManifestEntry, ManifestFile } from '../shared/manifest';
import type { TargetPlatform } from '../shared/workspacePath';
import {
  checkRelativePath,
  findCaseClashes,
  isInsideWorkspace,
  nameProblemsOn,
} from '../shared/workspacePath';
import type { ContentStore } from './contentStore';
import { tidyCopy } from './copyTidy';

/** What the agent laid out last time, per path: so an unchanged file is not copied again. */
interface LaidOut {
  hash: string;
  mode: number;
  size: number;
  mtimeMs: number;
}

type State = Record<string, LaidOut | { link: string }>;

/** File copies in flight at once during a layout. */
const COPY_CONCURRENCY = 16;

/** Runs `fn` over `items`, at most `limit` at a time. */
async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const WORKSPACE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Beside each copy: the setup commands that ran in it, and for which key (agent/setupSteps.ts). */
export const SETUP_RECORD = 'setup.json';

/**
 * The agent's copies of dispatchers' workspaces, under `root/NAME/`, laid
 * out from the content store. Every path is checked before anything is
 * written; nothing is written outside the copy, and never through a symlink.
 */
export class WorkspaceCopies {
  constructor(
    private readonly root: string,
    private readonly store: ContentStore,
    private readonly platform: TargetPlatform = targetPlatform(),
  ) {}

  /** The folder of a workspace copy; throws on a name that could escape `root`. */
  dirOf(workspace: string): string {
    if (!WORKSPACE_NAME.test(workspace) || workspace.startsWith('.')) {
      throw new OctaskError(
        ErrorCode.BadPath,
        `not a workspace name: ${JSON.stringify(workspace.slice(0, 80))}`,
      );
    }
    return join(this.root, workspace, 'tree');
  }

  /**
   * Removes copies not synced for `maxAgeMs` (every run syncs first, so this
   * is also their last use); returns the names removed.
   */
  async removeStale(maxAgeMs: number, now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for (const entry of await readdir(this.root, { withFileTypes: true }).catch(() => [])) {
      if (!entry.isDirectory() || !WORKSPACE_NAME.test(entry.name)) continue;
      const folder = join(this.root, entry.name);
      const st = await lstat(join(folder, 'state.json')).catch(() => lstat(folder));
      if (now - st.mtimeMs <= maxAgeMs) continue;
      await rm(folder, { recursive: true, force: true });
      removed.push(entry.name);
    }
    return removed;
  }

  /** Checks a whole manifest; the first problem is thrown as E_BAD_PATH, naming the path. */
  validate(entries: readonly ManifestEntry[]): void {
    const seen = new Set<string>();
    const links = new Map(entries.flatMap((e) => ('link' in e ? [[e.path, e.link] as const] : [])));
    for (const e of entries) {
      const bad = checkRelativePath(e.path) ?? nameProblemsOn(this.platform, e.path);
      if (bad)
        throw new OctaskError(ErrorCode.BadPath, `${JSON.stringify(e.path.slice(0, 200))}: ${bad}`);
      if (seen.has(e.path)) throw new OctaskError(ErrorCode.BadPath, `${e.path}: listed twice`);
      seen.add(e.path);
      if ('link' in e && !isInsideWorkspace(e.path, e.link, links)) {
        throw new OctaskError(
          ErrorCode.BadPath,
          `${e.path}: symlink to ${JSON.stringify(e.link)} leads outside the workspace`,
        );
      }
    }
    // A path below another entry would be written through it (a file or a symlink as a folder).
    for (const e of entries) {
      for (let i = e.path.indexOf('/'); i !== -1; i = e.path.indexOf('/', i + 1)) {
        if (seen.has(e.path.slice(0, i))) {
          throw new OctaskError(
            ErrorCode.BadPath,
            `${e.path}: lies below ${e.path.slice(0, i)}, which is not a folder`,
          );
        }
      }
    }
    if (this.platform === 'darwin' || this.platform === 'win32') {
      const clash = findCaseClashes(entries.map((e) => e.path))[0];
      if (clash)
        throw new OctaskError(
          ErrorCode.BadPath,
          `${clash[0]} and ${clash[1]} differ only in case, which this file system cannot hold apart`,
        );
    }
  }

  /**
   * Makes the copy match the manifest as a checkout would: writes what
   * changed (from the store), removes what came from the workspace and left
   * it, and keeps what tasks made (all of it unless `clean`; what matches a
   * `preserve` glob always). Every change goes through a ConfinedTree, so
   * no symlink in the copy (one a task made, even while this runs) is ever
   * followed.
   */
  async layOut(
    workspace: string,
    entries: readonly ManifestEntry[],
    preserve: readonly string[],
    options: { validated?: boolean; clean?: boolean } = {},
  ): Promise<{ written: number; removed: number; kept: number }> {
    if (!options.validated) this.validate(entries);
    const dir = this.dirOf(workspace);
    await mkdir(dir, { recursive: true });
    this.checkLinksAgainstCopy(dir, entries);
    const tree = new ConfinedTree(dir, { replaceNonFolders: true });
    try {
      // A fresh copy has lost what setup commands made: they run again.
      if (options.clean) await rm(this.recordPath(workspace, SETUP_RECORD), { force: true });
      return await this.layOutIn(tree, entries, preserve, options.clean ?? false);
    } finally {
      tree.close();
    }
  }

  /**
   * Refuses a manifest link that leaves the copy once resolved through the
   * links it ships with and those already in the copy (a link from an
   * earlier sync, or one a task made), as the OS would resolve it.
   */
  private checkLinksAgainstCopy(dir: string, entries: readonly ManifestEntry[]): void {
    const listed = new Map<string, string | undefined>();
    for (const e of entries) {
      listed.set(e.path, 'link' in e ? e.link : undefined);
      // Folders above an entry are made real folders by the layout.
      for (let i = e.path.indexOf('/'); i !== -1; i = e.path.indexOf('/', i + 1)) {
        if (!listed.has(e.path.slice(0, i))) listed.set(e.path.slice(0, i), undefined);
      }
    }
    const lookup = (path: string): string | undefined =>
      listed.has(path) ? listed.get(path) : linkOnDisk(dir, path);
    for (const e of entries) {
      if ('link' in e && !isInsideWorkspace(e.path, e.link, lookup)) {
        throw new OctaskError(
          ErrorCode.BadPath,
          `${e.path}: symlink to ${JSON.stringify(e.link)} leads outside the workspace through links already in the copy`,
        );
      }
    }
  }

  private async layOutIn(
    tree: ConfinedTree,
    entries: readonly ManifestEntry[],
    preserve: readonly string[],
    clean: boolean,
  ): Promise<{ written: number; removed: number; kept: number }> {
    const statePath = join(tree.root, '..', 'state.json');
    const before = await readState(statePath);
    const after: State = {};
    let written = 0;
    // Metadata is read synchronously: for an unchanged 10,000-file copy that
    // is ~30 ms of stat calls, against several times that as awaited promises.
    const folders = new Set<string>();
    const copies: ManifestFile[] = [];
    for (const e of entries) {
      const parent = dirname(e.path);
      if (parent !== '.') {
        tree.folder(parent);
        for (let p = parent; p !== '.' && !folders.has(p); p = dirname(p)) folders.add(p);
      }
      const current = tree.lstat(e.path);
      if ('link' in e) {
        if (!current?.isSymbolicLink() || readlinkSync(tree.entry(e.path)) !== e.link) {
          if (current?.isDirectory()) tree.remove(e.path);
          await tree.linkIn(e.path, e.link);
          written++;
        }
        after[e.path] = { link: e.link };
        continue;
      }
      const prev = before[e.path];
      const unchanged =
        prev &&
        'hash' in prev &&
        prev.hash === e.hash &&
        prev.mode === e.mode &&
        current?.isFile() &&
        current.size === prev.size &&
        current.mtimeMs === prev.mtimeMs;
      if (unchanged) {
        after[e.path] = prev;
        continue;
      }
      copies.push(e);
    }
    // Copies run several at a time: each is a few syscalls that wait on the
    // disk, and one after another they leave both the disk queue and the CPU idle.
    await forEachLimit(copies, COPY_CONCURRENCY, async (entry) => {
      // Copied to a random temporary name, then renamed: a reader never sees
      // half a file, and a hard link into the store is never made (a build
      // writing in place would corrupt it).
      await tree.copyIn(this.store.pathOf(entry.hash), entry.path, entry.mode);
      const st = tree.lstat(entry.path);
      if (!st) throw new OctaskError(ErrorCode.BadPath, `${entry.path} vanished while laid out`);
      after[entry.path] = {
        hash: entry.hash,
        mode: entry.mode,
        size: st.size,
        mtimeMs: st.mtimeMs,
      };
    });
    written += copies.length;
    this.store.touch(entries.flatMap((e) => ('hash' in e ? [e.hash] : [])));
    const { removed, kept } = tidyCopy(tree, {
      listed: new Set(entries.map((e) => e.path)),
      folders,
      tracked: new Set(Object.keys(before)),
      preserve,
      clean,
    });
    // The state is rewritten only when the copy changed (it is ~150 bytes a file).
    if (written > 0 || removed > 0 || Object.keys(before).length !== entries.length) {
      await writeFile(statePath, JSON.stringify(after));
    } else {
      const now = new Date();
      await utimes(statePath, now, now).catch(() => undefined);
    }
    return { written, removed, kept };
  }

  /**
   * Whether the copy's last layout was of exactly these entries (what tasks
   * did in it since is not looked at): then a sync would change nothing
   * that came from the workspace.
   */
  async matches(workspace: string, entries: readonly ManifestEntry[]): Promise<boolean> {
    const state = await readState(this.recordPath(workspace, 'state.json'));
    if (Object.keys(state).length !== entries.length) return false;
    return entries.every((e) => {
      const was = state[e.path];
      if (!was) return false;
      if ('link' in e) return 'link' in was && was.link === e.link;
      return 'hash' in was && was.hash === e.hash && was.mode === e.mode;
    });
  }

  /** A file of the agent's own beside the copy of `workspace` (state, setup records). */
  recordPath(workspace: string, name: string): string {
    return join(this.dirOf(workspace), '..', name);
  }

  /**
   * The files under the copy that match `globs`, hashed, for bringing back
   * as artifacts. Links are followed neither in the walk nor when hashing.
   */
  async collect(
    workspace: string,
    globs: readonly string[],
  ): Promise<{ entries: ManifestEntry[]; paths: Map<string, string> }> {
    const dir = this.dirOf(workspace);
    const entries: ManifestEntry[] = [];
    const paths = new Map<string, string>();
    if (!lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) return { entries, paths };
    const tree = new ConfinedTree(dir, { replaceNonFolders: false });
    const walk = async (rel: string): Promise<void> => {
      let folder: string;
      try {
        folder = tree.folder(rel);
      } catch {
        return; // replaced by a link or a file since it was listed
      }
      const names = readdirSync(folder).sort();
      for (const name of names) {
        const path = rel ? `${rel}/${name}` : name;
        const st = lstatSync(join(folder, name), { throwIfNoEntry: false });
        if (!st) continue;
        if (st.isDirectory()) {
          await walk(path);
        } else if (matchesAnyGlob(globs, path) && !checkRelativePath(path)) {
          if (st.isSymbolicLink()) {
            // Every link is reported, even one leading out: the dispatcher decides,
            // and tells its user which it refused and why.
            entries.push({ path, link: readlinkSync(join(folder, name)) });
          } else if (st.isFile()) {
            // Hashed through the confined folder; sent later by its plain path, and
            // the dispatcher writes a blob only if it matches this hash.
            const hash = await hashFile(join(folder, name));
            entries.push({ path, size: st.size, mode: st.mode & 0o777, hash });
            paths.set(hash, join(dir, path));
          }
        }
      }
    };
    try {
      await walk('');
    } finally {
      tree.close();
    }
    return { entries, paths };
  }
}

async function readState(path: string): Promise<State> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as State;
  } catch {
    return {};
  }
}

export function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** This machine as a target for names: anything not listed behaves like Linux. */
function targetPlatform(): TargetPlatform {
  const p = process.platform as string;
  return p === 'darwin' || p === 'win32' || p === 'android' ? p : 'linux';
}
