/**
 * Writes confined to one folder: both programs use it to change a tree that
 * the other side (a task on the agent, an agent for the dispatcher) may have
 * filled with symlinks. Nothing here ever follows a symlink that exists
 * inside the folder, whoever made it and whenever.
 *
 * On Linux and Android each folder is opened once with O_NOFOLLOW and then
 * reached through `/proc/self/fd/N`, which names that exact folder however
 * its path is renamed or swapped for a link afterwards: the same guarantee
 * as openat(2), which Node does not expose. Elsewhere (macOS, Windows) each
 * component is checked with lstat before use, which leaves a window between
 * check and use; docs/ARCHITECTURE.md says so.
 *
 * This is the one module of shared/ that touches the file system: the
 * agent and the dispatcher must apply the same rules, and they share only
 * shared/.
 */

import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  renameSync,
  rmSync,
} from 'node:fs';
import type { Stats } from 'node:fs';
import { chmod, copyFile, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, OctaskError } from './errors';

/** Folder handles kept open at once during one batch of writes. */
const MAX_OPEN_FOLDERS = 128;

/** Prefix of the temporary names this module makes; never a real entry of a tree. */
export const TEMP_PREFIX = '.octask-';
const TEMP_SUFFIX = '.tmp';

const PROC_FD = '/proc/self/fd';

function procFdWorks(): boolean {
  if (!existsSync(PROC_FD)) return false;
  let fd: number | undefined;
  try {
    fd = openSync('/', fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    return lstatSync(`${PROC_FD}/${fd}/.`).isDirectory();
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

let procFd: boolean | undefined;
function useProcFd(): boolean {
  procFd ??= procFdWorks();
  return procFd;
}

/** Whether `name` is one of this module's temporary names (left over from a crash). */
export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX);
}

function tempName(): string {
  return `${TEMP_PREFIX}${randomBytes(12).toString('hex')}${TEMP_SUFFIX}`;
}

export interface ConfinedOptions {
  /**
   * What to do when a file or a symlink stands where a folder must be: the
   * agent replaces it (its copy must match the manifest), the dispatcher
   * refuses (the local workspace is the user's).
   */
  replaceNonFolders: boolean;
}

/**
 * One batch of changes below `root` (a layout, an artifact fetch). Paths
 * are `/`-separated and relative to `root`, already checked by
 * checkRelativePath. Call close() when done: it releases folder handles.
 */
export class ConfinedTree {
  /** Folder (relative path) → the path that reaches it without following links. */
  private readonly handles = new Map<string, { path: string; fd?: number }>();

  constructor(
    readonly root: string,
    private readonly options: ConfinedOptions,
  ) {
    const st = lstatSync(root, { throwIfNoEntry: false });
    if (!st?.isDirectory()) {
      throw new OctaskError(ErrorCode.BadPath, `${root} is not a folder`);
    }
  }

  /**
   * A path through which the folder `rel` ('' for the root) is reached
   * without following a symlink below the root. Missing folders are made;
   * anything else in the way is replaced or refused, as the options say.
   */
  folder(rel: string): string {
    const known = this.handles.get(rel);
    if (known) {
      // Most recently used last: the oldest handle is the one closed first.
      this.handles.delete(rel);
      this.handles.set(rel, known);
      return known.path;
    }
    if (rel === '') return this.remember('', this.openFolder(this.root, ''));
    const cut = rel.lastIndexOf('/');
    const parentRel = cut === -1 ? '' : rel.slice(0, cut);
    const name = cut === -1 ? rel : rel.slice(cut + 1);
    const parent = this.folder(parentRel);
    return this.remember(rel, this.openFolder(join(parent, name), rel));
  }

  /** A path for the entry `rel` itself (its folder confined, the last name not followed by the caller). */
  entry(rel: string): string {
    const cut = rel.lastIndexOf('/');
    return join(this.folder(cut === -1 ? '' : rel.slice(0, cut)), rel.slice(cut + 1));
  }

  /** lstat of `rel`, or undefined when nothing is there. Never follows the last name. */
  lstat(rel: string): Stats | undefined {
    return lstatSync(this.entry(rel), { throwIfNoEntry: false });
  }

  /**
   * Puts a copy of the file `source` (outside the tree) at `rel`: copied to
   * an exclusive, random name in the target folder, then renamed over
   * whatever is at `rel` (a symlink there is replaced, not followed).
   */
  async copyIn(source: string, rel: string, mode: number): Promise<void> {
    const folder = this.folder(parentOf(rel));
    const tmp = join(folder, tempName());
    try {
      // EXCL: the copy creates its file (O_CREAT|O_EXCL), so it never writes through a link.
      await copyFile(source, tmp, fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE);
      await chmod(tmp, mode & 0o777);
      await this.renameOver(tmp, folder, rel);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /**
   * Moves the file `source` (outside the tree, on the same file system) to
   * `rel` with `mode`: one rename over whatever is at `rel`, so its bytes
   * are not written again. The caller owns `source` (a staged blob).
   */
  moveIn(source: string, rel: string, mode: number, sourceMode?: number): void {
    const folder = this.folder(parentOf(rel));
    if (sourceMode === undefined || (sourceMode & 0o777) !== (mode & 0o777))
      chmodSync(source, mode & 0o777);
    this.renameOverSync(source, folder, rel);
  }

  /** Makes `rel` a symlink to `target` (validated by the caller), replacing what is there. */
  async linkIn(rel: string, target: string): Promise<void> {
    const folder = this.folder(parentOf(rel));
    const tmp = join(folder, tempName());
    await symlink(target, tmp);
    try {
      await this.renameOver(tmp, folder, rel);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Removes `rel` (a file, a link, or a folder with everything below it); never follows a link. */
  remove(rel: string): void {
    rmSync(this.entry(rel), { recursive: true, force: true });
    this.forgetBelow(rel);
  }

  /** Releases every folder handle. */
  close(): void {
    for (const h of this.handles.values()) if (h.fd !== undefined) closeSync(h.fd);
    this.handles.clear();
  }

  private async renameOver(tmp: string, folder: string, rel: string): Promise<void> {
    await rename(tmp, this.clearFolderAt(folder, rel));
  }

  private renameOverSync(tmp: string, folder: string, rel: string): void {
    try {
      // Tried first: a folder in the way is rare, and a stat to look for one costs a syscall a file.
      renameSync(tmp, join(folder, baseOf(rel)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      renameSync(tmp, this.clearFolderAt(folder, rel));
    }
  }

  /** The path of `rel` in its confined `folder`, a folder standing there removed (or refused). */
  private clearFolderAt(folder: string, rel: string): string {
    const target = join(folder, baseOf(rel));
    const current = lstatSync(target, { throwIfNoEntry: false });
    if (current?.isDirectory()) {
      if (!this.options.replaceNonFolders) {
        throw new OctaskError(ErrorCode.BadPath, `${rel}: a folder is in the way`);
      }
      rmSync(target, { recursive: true, force: true });
      this.forgetBelow(rel);
    }
    return target;
  }

  private forgetBelow(rel: string): void {
    for (const [key, h] of this.handles) {
      if (key === rel || key.startsWith(`${rel}/`)) {
        if (h.fd !== undefined) closeSync(h.fd);
        this.handles.delete(key);
      }
    }
  }

  private remember(rel: string, handle: { path: string; fd?: number }): string {
    this.handles.set(rel, handle);
    while (this.handles.size > MAX_OPEN_FOLDERS) {
      const [oldest, h] = this.handles.entries().next().value as [string, { fd?: number }];
      if (h.fd !== undefined) closeSync(h.fd);
      this.handles.delete(oldest);
    }
    return handle.path;
  }

  /** Opens the folder at `path` (reached through confined parents), making or replacing it as needed. */
  private openFolder(path: string, rel: string): { path: string; fd?: number } {
    let st = lstatSync(path, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) {
      if (!this.options.replaceNonFolders || rel === '') {
        throw new OctaskError(
          ErrorCode.BadPath,
          `${rel || path}: ${st.isSymbolicLink() ? 'a symlink' : 'a file'} stands where a folder must be`,
        );
      }
      rmSync(path, { force: true });
      st = undefined;
    }
    if (!st) mkdirSync(path);
    if (!useProcFd()) return { path };
    // O_NOFOLLOW: if a link was swapped in since the lstat, the open fails instead of following it.
    const fd = openSync(
      path,
      fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW,
    );
    return { path: `${PROC_FD}/${fd}`, fd };
  }
}

function parentOf(rel: string): string {
  const cut = rel.lastIndexOf('/');
  return cut === -1 ? '' : rel.slice(0, cut);
}

function baseOf(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}

/**
 * The target of the symlink at `rel` below `root` as the disk has it now, or
 * undefined when `rel` is not a link. For link resolution (workspacePath's
 * LinkLookup), which asks about a path only once every folder above it
 * resolved to a real folder, so this lstat sees the path it names.
 */
export function linkOnDisk(root: string, rel: string): string | undefined {
  const full = join(root, rel);
  const st = lstatSync(full, { throwIfNoEntry: false });
  return st?.isSymbolicLink() ? readlinkSync(full) : undefined;
}
