/**
 * Watches the folders of a workspace that can hold synced files, one
 * non-recursive `fs.watch` per folder, and reports each event as a
 * workspace-relative path. Folders git ignores whole (node_modules, build
 * output) are not watched: on Linux a recursive watch would put an inotify
 * watch on each of their thousands of folders. The number of watches is
 * bounded (inotify's per-user limit is shared with the editor and every
 * other program); past the bound the caller prepares without watching.
 */
import { readdirSync, watch as fsWatch } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { git } from './fileList';

/** What FolderWatch needs of a watcher (fs.FSWatcher has it). */
export interface Watcher {
  close(): void;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/** fs.watch's shape, replaceable in tests (a watcher that cannot be made). */
export type WatchFn = (
  folder: string,
  listener: (event: string, filename: string | null) => void,
) => Watcher;

export const watchFolder: WatchFn = (folder, listener) =>
  // Not persistent: a watch never keeps the dispatcher alive by itself.
  fsWatch(folder, { persistent: false, encoding: 'utf8' }, listener);

/** Where git keeps what decides the workspace's file set, or null outside a work tree. */
export interface GitPlaces {
  /** The repository folder (`.git`, or a worktree's own): its `index` lists tracked files. */
  gitDir: string;
  /** Holds `info/exclude`, shared by every worktree. */
  commonDir: string;
  /** The work tree's top folder; `.gitignore` files from there down to the workspace count. */
  topLevel: string;
}

export async function findGitPlaces(root: string): Promise<GitPlaces | null> {
  let out: string;
  try {
    out = await git(root, [
      'rev-parse',
      '--absolute-git-dir',
      '--git-common-dir',
      '--show-toplevel',
    ]);
  } catch {
    return null;
  }
  const [gitDir, common, topLevel] = out.split(/\r?\n/);
  if (!gitDir || !common || !topLevel) return null;
  return { gitDir, commonDir: resolve(root, common), topLevel };
}

/**
 * Folders under `root` that git ignores as a whole, relative to `root`
 * (`ls-files --directory` names such a folder once instead of its files).
 */
export async function ignoredFolders(root: string): Promise<Set<string>> {
  const out = await git(root, [
    'ls-files',
    '-z',
    '--others',
    '--ignored',
    '--exclude-standard',
    '--directory',
  ]);
  const folders = new Set<string>();
  for (const p of out.split('\0')) if (p.endsWith('/')) folders.add(p.slice(0, -1));
  return folders;
}

export class TooManyFolders extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} folders to watch`);
  }
}

/** Watches left to share among the workspaces of one dispatcher. */
export class WatchBudget {
  constructor(public left: number) {}
}

/**
 * Every folder under `root` but `.git` and those in `skip`, relative to it
 * ('' for `root`); throws TooManyFolders past `limit`.
 */
export function foldersUnder(root: string, skip: ReadonlySet<string>, limit: number): string[] {
  const found: string[] = [];
  const pending = [''];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    found.push(dir);
    if (found.length > limit) throw new TooManyFolders(limit);
    let entries;
    try {
      entries = readdirSync(join(root, dir), { withFileTypes: true });
    } catch {
      continue; // gone or unreadable: nothing to list there, and a later event says if it returns
    }
    for (const e of entries) {
      if (!e.isDirectory() || e.name.toLowerCase() === '.git') continue;
      const path = dir === '' ? e.name : `${dir}/${e.name}`;
      if (!skip.has(path)) pending.push(path);
    }
  }
  return found;
}

/** The folders from `top` down to `root`'s parent (absolute), when `root` lies below `top`. */
export function foldersAbove(top: string, root: string): string[] {
  const rel = relative(top, root);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return [];
  const parts = rel.split(sep);
  return parts.map((_, i) => join(top, ...parts.slice(0, i)));
}

export interface FolderWatchEvents {
  /** Something happened to the entry at this workspace-relative path (or to one in that folder). */
  path(rel: string): void;
  /** An event that says nothing precise (no file name, a watcher error): trust nothing. */
  doubt(why: string): void;
}

export class FolderWatch {
  private readonly watchers = new Map<string, Watcher>();
  private closed = false;

  constructor(
    private readonly root: string,
    private readonly events: FolderWatchEvents,
    private readonly limit: number,
    private readonly budget: WatchBudget,
    private readonly watch: WatchFn = watchFolder,
  ) {}

  get size(): number {
    return this.watchers.size;
  }

  has(rel: string): boolean {
    return this.watchers.has(rel);
  }

  /**
   * Watches workspace folder `rel` ('' for the root); false if it is not
   * there (gone since listed: its parent's watch saw that), throws if it
   * cannot be watched.
   */
  add(rel: string): boolean {
    if (this.watchers.has(rel)) return true;
    try {
      this.addWatcher(rel, join(this.root, rel), (name) =>
        this.events.path(rel === '' ? name : `${rel}/${name}`),
      );
      return true;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw err;
    }
  }

  /** Watches a folder outside the workspace (git's), passing on entry names. */
  addOutside(folder: string, onName: (name: string) => void): void {
    this.addWatcher(`\0${folder}`, folder, onName);
  }

  private addWatcher(key: string, folder: string, onName: (name: string) => void): void {
    if (this.closed) throw new Error('the folder watch is closed');
    if (this.watchers.size >= this.limit) throw new TooManyFolders(this.limit);
    if (this.budget.left <= 0) throw new Error('the watches for all workspaces are used up');
    const watcher = this.watch(folder, (_event, filename) => {
      if (this.closed) return;
      if (filename === null || filename === '')
        this.events.doubt(`an event without a name in ${folder}`);
      else onName(filename.split(sep).join('/'));
    });
    watcher.on('error', (err) => {
      if (!this.closed) this.events.doubt(`the watch of ${folder} failed: ${err.message}`);
    });
    this.watchers.set(key, watcher);
    this.budget.left--;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.left += this.watchers.size;
    for (const w of this.watchers.values()) {
      try {
        w.close();
      } catch {
        // Already closed by its own error: nothing to release.
      }
    }
    this.watchers.clear();
  }
}
