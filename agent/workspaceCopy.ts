import { createHash } from 'node:crypto';
import { constants as fsConstants, createReadStream, lstatSync, mkdirSync, rmSync } from 'node:fs';
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
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
   * `preserve` glob always).
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
    const statePath = join(dir, '..', 'state.json');
    const before = await readState(statePath);
    const after: State = {};
    let written = 0;
    // Metadata is read synchronously: for an unchanged 10,000-file copy that
    // is ~30 ms of stat calls, against several times that as awaited promises.
    const folders = new Set<string>();
    const copies: Array<{ entry: ManifestFile; target: string }> = [];
    for (const e of entries) {
      const target = join(dir, e.path);
      this.ensureFolder(dir, dirname(e.path), folders);
      if ('link' in e) {
        const current = lstatSync(target, { throwIfNoEntry: false });
        if (!current?.isSymbolicLink() || (await readlink(target)) !== e.link) {
          await rm(target, { recursive: true, force: true });
          await symlink(e.link, target);
          written++;
        }
        after[e.path] = { link: e.link };
        continue;
      }
      const prev = before[e.path];
      const current = lstatSync(target, { throwIfNoEntry: false });
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
      if (current && !current.isFile()) rmSync(target, { recursive: true, force: true });
      copies.push({ entry: e, target });
    }
    // Copies run several at a time: each is a few syscalls that wait on the
    // disk, and one after another they leave both the disk queue and the CPU idle.
    await forEachLimit(copies, COPY_CONCURRENCY, async ({ entry, target }) => {
      // Copy beside, then rename: a reader never sees half a file, and a hard
      // link into the store is never made (a build writing in place would corrupt it).
      const tmp = `${target}.octask-tmp`;
      await copyFile(this.store.pathOf(entry.hash), tmp, fsConstants.COPYFILE_FICLONE);
      await chmod(tmp, entry.mode & 0o777);
      await rename(tmp, target);
      const st = await lstat(target);
      after[entry.path] = {
        hash: entry.hash,
        mode: entry.mode,
        size: st.size,
        mtimeMs: st.mtimeMs,
      };
    });
    written += copies.length;
    this.store.touch(entries.flatMap((e) => ('hash' in e ? [e.hash] : [])));
    // A fresh copy has lost what setup commands made: they run again.
    if (options.clean) await rm(this.recordPath(workspace, SETUP_RECORD), { force: true });
    const { removed, kept } = tidyCopy(dir, {
      listed: new Set(entries.map((e) => e.path)),
      folders,
      tracked: new Set(Object.keys(before)),
      preserve,
      clean: options.clean ?? false,
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
    const state = await readState(join(this.dirOf(workspace), '..', 'state.json'));
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

  /** The files under the copy that match `globs`, hashed, for bringing back as artifacts. */
  async collect(
    workspace: string,
    globs: readonly string[],
  ): Promise<{ entries: ManifestEntry[]; paths: Map<string, string> }> {
    const dir = this.dirOf(workspace);
    const entries: ManifestEntry[] = [];
    const paths = new Map<string, string>();
    const walk = async (rel: string): Promise<void> => {
      const names = await readdir(join(dir, rel)).catch(() => [] as string[]);
      for (const name of names.sort()) {
        const path = rel ? `${rel}/${name}` : name;
        const full = join(dir, path);
        const st = await lstat(full);
        if (st.isDirectory()) {
          await walk(path);
        } else if (matchesAnyGlob(globs, path) && !checkRelativePath(path)) {
          if (st.isSymbolicLink()) {
            const link = await readlink(full);
            if (isInsideWorkspace(path, link)) entries.push({ path, link });
          } else if (st.isFile()) {
            const hash = await hashFile(full);
            entries.push({ path, size: st.size, mode: st.mode & 0o777, hash });
            paths.set(hash, full);
          }
        }
      }
    };
    await walk('');
    return { entries, paths };
  }

  /** Makes the folders of `rel` inside `dir`, replacing anything in the way that is not a real folder. */
  private ensureFolder(dir: string, rel: string, known: Set<string>): void {
    if (rel === '.' || rel === '' || known.has(rel)) return;
    let at = dir;
    let sofar = '';
    for (const part of rel.split('/')) {
      at = join(at, part);
      sofar = sofar ? `${sofar}/${part}` : part;
      if (known.has(sofar)) continue;
      const st = lstatSync(at, { throwIfNoEntry: false });
      if (!st?.isDirectory()) {
        // A symlink or file where a folder belongs: writing through it could leave the copy.
        if (st) rmSync(at, { recursive: true, force: true });
        mkdirSync(at);
      }
      known.add(sofar);
    }
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
