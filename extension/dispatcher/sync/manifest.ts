/**
 * Builds the manifest a sync sends: each listed path as a regular file (by
 * content hash) or a symlink that stays inside the workspace. Anything that
 * must not travel (links out, devices, paths through symlinks, bad names)
 * becomes a problem with a reason, never an entry.
 */
import type { Stats } from 'node:fs';
import { lstatSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { ManifestEntry, ManifestFile, ManifestProblem } from '../../../shared/manifest';
import { checkRelativePath, isInsideWorkspace } from '../../../shared/workspacePath';
import { comparePaths } from './fileList';
import type { HashCache, HashResult } from './hashCache';
import { TimeSlice } from './timeSlice';
import type { WorkspaceFeed } from './workspaceFeed';

export interface Manifest {
  /** Sorted by path. */
  entries: ManifestEntry[];
  /** Paths left out, sorted by path. */
  problems: ManifestProblem[];
  /** Total size of the regular files. */
  bytes: number;
  /** Regular files among the entries. */
  files: number;
  /** Symlinks among the entries. */
  links: number;
  /** Every path that is a symlink, whether it stays inside (an entry) or not (a problem). */
  symlinks: string[];
}

// One synchronous pass over the paths (lstat, then hash through the cache
// when small; a path the cache has no row for is opened without the lstat),
// giving the event loop a turn every few milliseconds (TimeSlice): several
// times faster than a promise per lstat or per read.

type Examined =
  | { kind: 'entry'; entry: ManifestFile }
  | { kind: 'link'; path: string; target: string }
  | { kind: 'big'; path: string; stats: Stats }
  | { kind: 'problem'; problem: ManifestProblem }
  | { kind: 'gone' };

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(err);
}

function typeName(stats: Stats): string {
  if (stats.isDirectory()) return 'a folder (a git submodule?)';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isCharacterDevice()) return 'a character device';
  return 'not a regular file';
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

/**
 * Whether a listed path's folders are real folders on disk, each folder
 * lstat'ed once: a path under a symlink (or under what is now a file) would
 * be read through it, possibly from outside the workspace.
 */
class FolderCheck {
  private readonly reasons = new Map<string, string | null>();

  constructor(private readonly root: string) {}

  /** Why `path` must not be read through its folders (the shallowest bad one), or null. */
  reasonFor(path: string): string | null {
    return this.check(parentOf(path));
  }

  private check(folder: string): string | null {
    if (folder === '') return null;
    const known = this.reasons.get(folder);
    if (known !== undefined) return known;
    const reason = this.check(parentOf(folder)) ?? this.own(folder);
    this.reasons.set(folder, reason);
    return reason;
  }

  private own(folder: string): string | null {
    const stats = lstatSync(join(this.root, folder), { throwIfNoEntry: false });
    if (stats === undefined || stats.isDirectory()) return null;
    return stats.isSymbolicLink()
      ? `lies under the symlink "${folder}"`
      : `"${folder}" is not a folder`;
  }
}

function hashFailure(path: string, err: unknown): Examined {
  const code = errorCode(err);
  // Deleted while being hashed: as if it had never been.
  if (code === 'ENOENT') return { kind: 'gone' };
  const why = code === 'ELOOP' ? 'was replaced by a symlink' : code;
  return { kind: 'problem', problem: { path, reason: `could not be hashed (${why})` } };
}

function fileEntry(path: string, stats: Stats, { hash, stamp }: HashResult): Examined {
  return { kind: 'entry', entry: { path, size: stamp.size, mode: stats.mode & 0o777, hash } };
}

/** One listed path, by name, folders, type and (when small) content. */
function examine(root: string, path: string, folders: FolderCheck, cache: HashCache): Examined {
  const bad = checkRelativePath(path);
  if (bad) return { kind: 'problem', problem: { path, reason: `path ${bad}` } };
  const through = folders.reasonFor(path);
  if (through) return { kind: 'problem', problem: { path, reason: through } };
  const abs = join(root, path);
  try {
    const unseen = cache.hashUnseen(abs);
    if (unseen.stats)
      return unseen.result
        ? fileEntry(path, unseen.stats, unseen.result)
        : { kind: 'big', path, stats: unseen.stats };
  } catch (err) {
    return hashFailure(path, err);
  }
  let stats: Stats;
  try {
    stats = lstatSync(abs);
  } catch (err) {
    // Deleted since it was listed (or a tracked file deleted locally): as if it had never been.
    if (errorCode(err) === 'ENOENT') return { kind: 'gone' };
    return { kind: 'problem', problem: { path, reason: `could not be read (${errorCode(err)})` } };
  }
  try {
    if (stats.isSymbolicLink()) return { kind: 'link', path, target: readlinkSync(abs) };
    if (!stats.isFile())
      return { kind: 'problem', problem: { path, reason: `is ${typeName(stats)}; not synced` } };
    const result = cache.hashSync(abs, stats);
    return result ? fileEntry(path, stats, result) : { kind: 'big', path, stats };
  } catch (err) {
    return hashFailure(path, err);
  }
}

function checkLinks(
  links: ReadonlyArray<{ path: string; target: string }>,
): Array<ManifestEntry | ManifestProblem> {
  // Each link is judged with all the others known, as the OS would resolve a chain.
  const all = new Map(links.map((l) => [l.path, l.target]));
  return links.map(({ path, target }) =>
    isInsideWorkspace(path, target, all)
      ? { path, link: target }
      : { path, reason: `is a symlink to ${JSON.stringify(target)}, outside the workspace` },
  );
}

/**
 * The manifest of `files` (workspace-relative, as listWorkspaceFiles gives
 * them) under `root`, hashing through `cache`. The caller saves the cache.
 * Files over SYNC_HASH_MAX_BYTES are read last, asynchronously. Each
 * entry also goes to `feed` as it is made, told at every turn given to
 * the event loop (a streamed sync sends it then).
 */
export async function buildManifest(
  root: string,
  files: readonly string[],
  cache: HashCache,
  slice = new TimeSlice(),
  feed?: WorkspaceFeed,
): Promise<Manifest> {
  const entries: ManifestEntry[] = [];
  const problems: ManifestProblem[] = [];
  const links: Array<{ path: string; target: string }> = [];
  const big: Array<{ path: string; stats: Stats }> = [];
  const take = (x: Examined): void => {
    if (x.kind === 'entry') {
      entries.push(x.entry);
      feed?.add(x.entry);
    } else if (x.kind === 'link') links.push(x);
    else if (x.kind === 'big') big.push(x);
    else if (x.kind === 'problem') problems.push(x.problem);
  };
  const folders = new FolderCheck(root);
  for (const path of new Set(files)) {
    if (slice.due) {
      feed?.flush();
      await slice.yieldNow();
    }
    take(examine(root, path, folders, cache));
  }
  feed?.flush();
  for (const { path, stats } of big) {
    try {
      take(fileEntry(path, stats, await cache.hash(join(root, path), stats)));
    } catch (err) {
      take(hashFailure(path, err));
    }
  }
  for (const item of checkLinks(links)) {
    if ('reason' in item) problems.push(item);
    else {
      entries.push(item);
      feed?.add(item);
    }
  }
  return summarise(
    entries,
    problems,
    links.map((l) => l.path),
  );
}

function summarise(
  entries: ManifestEntry[],
  problems: ManifestProblem[],
  symlinks: string[],
): Manifest {
  entries.sort((a, b) => comparePaths(a.path, b.path));
  problems.sort((a, b) => comparePaths(a.path, b.path));
  let bytes = 0;
  let files = 0;
  for (const e of entries) {
    if ('link' in e) continue;
    bytes += e.size;
    files++;
  }
  return { entries, problems, bytes, files, links: entries.length - files, symlinks };
}
