/**
 * Builds the manifest a sync sends: each listed path as a regular file (by
 * content hash) or a symlink that stays inside the workspace. Anything that
 * must not travel (links out, devices, paths through symlinks, bad names)
 * becomes a problem with a reason, never an entry.
 */
import type { Stats } from 'node:fs';
import { lstatSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManifestEntry, ManifestFile, ManifestProblem } from '../../../shared/manifest';
import { checkRelativePath, isInsideWorkspace } from '../../../shared/workspacePath';
import { comparePaths } from './fileList';
import { HashCache, mapLimit } from './hashCache';

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
}

/** How many lstat/readlink calls run at once. */
const STAT_CONCURRENCY = 32;

type Classified =
  | { kind: 'file'; path: string; stats: Stats }
  | { kind: 'link'; path: string; target: string }
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

/** Every proper folder prefix of `path` ("a/b/c" → "a", "a/b"). */
function folderPrefixes(path: string): string[] {
  const segments = path.split('/');
  return segments.slice(1).map((_, i) => segments.slice(0, i + 1).join('/'));
}

/**
 * The folders of `paths` that are not real folders on disk (symlinks,
 * files), mapped to a reason; a listed path under one would be read through
 * it, possibly from outside the workspace.
 */
async function findFalseFolders(
  root: string,
  paths: readonly string[],
): Promise<Map<string, string>> {
  const folders = [...new Set(paths.flatMap(folderPrefixes))];
  const reasons = await mapLimit(folders, STAT_CONCURRENCY, async (folder) => {
    const stats = lstatSync(join(root, folder), { throwIfNoEntry: false });
    if (stats === undefined || stats.isDirectory()) return null;
    return stats.isSymbolicLink()
      ? `lies under the symlink "${folder}"`
      : `"${folder}" is not a folder`;
  });
  return new Map(folders.flatMap((f, i) => (reasons[i] ? [[f, reasons[i]]] : [])));
}

async function classify(root: string, path: string): Promise<Classified> {
  try {
    // Synchronous on purpose: a warm 10,000-file manifest is ~30 ms of lstat
    // this way, several times that as awaited promises.
    const stats = lstatSync(join(root, path));
    if (stats.isFile()) return { kind: 'file', path, stats };
    if (stats.isSymbolicLink())
      return { kind: 'link', path, target: await readlink(join(root, path)) };
    return { kind: 'problem', problem: { path, reason: `is ${typeName(stats)}; not synced` } };
  } catch (err) {
    // Deleted since it was listed: as if it had never been.
    if (errorCode(err) === 'ENOENT') return { kind: 'gone' };
    return { kind: 'problem', problem: { path, reason: `could not be read (${errorCode(err)})` } };
  }
}

async function hashEntry(
  root: string,
  path: string,
  stats: Stats,
  cache: HashCache,
): Promise<ManifestFile | ManifestProblem | null> {
  try {
    const { hash, stamp } = await cache.hash(join(root, path), stats);
    return { path, size: stamp.size, mode: stats.mode & 0o777, hash };
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT') return null;
    const why = code === 'ELOOP' ? 'was replaced by a symlink' : code;
    return { path, reason: `could not be hashed (${why})` };
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

function isProblem(x: ManifestEntry | ManifestProblem): x is ManifestProblem {
  return 'reason' in x;
}

/** Splits `paths` into those fit to stat and problems with the rest. */
async function screenPaths(
  root: string,
  paths: readonly string[],
): Promise<{ ok: string[]; problems: ManifestProblem[] }> {
  const problems: ManifestProblem[] = [];
  const named: string[] = [];
  for (const path of new Set(paths)) {
    const reason = checkRelativePath(path);
    if (reason) problems.push({ path, reason: `path ${reason}` });
    else named.push(path);
  }
  const falseFolders = await findFalseFolders(root, named);
  const ok: string[] = [];
  for (const path of named) {
    const through = folderPrefixes(path).find((f) => falseFolders.has(f));
    if (through === undefined) ok.push(path);
    else problems.push({ path, reason: falseFolders.get(through) ?? 'lies under a symlink' });
  }
  return { ok, problems };
}

/**
 * The manifest of `files` (workspace-relative, as listWorkspaceFiles gives
 * them) under `root`, hashing through `cache`. The caller saves the cache.
 */
export async function buildManifest(
  root: string,
  files: readonly string[],
  cache: HashCache,
): Promise<Manifest> {
  const { ok, problems } = await screenPaths(root, files);
  const classified = await mapLimit(ok, STAT_CONCURRENCY, (path) => classify(root, path));
  const regular: Array<{ path: string; stats: Stats }> = [];
  const links: Array<{ path: string; target: string }> = [];
  for (const c of classified) {
    if (c.kind === 'file') regular.push(c);
    else if (c.kind === 'link') links.push(c);
    else if (c.kind === 'problem') problems.push(c.problem);
  }
  const hashed = await mapLimit(regular, cache.concurrency, ({ path, stats }) =>
    hashEntry(root, path, stats, cache),
  );
  const entries: ManifestEntry[] = [];
  for (const item of [...hashed, ...checkLinks(links)]) {
    if (item === null) continue;
    if (isProblem(item)) problems.push(item);
    else entries.push(item);
  }
  return summarise(entries, problems);
}

function summarise(entries: ManifestEntry[], problems: ManifestProblem[]): Manifest {
  entries.sort((a, b) => comparePaths(a.path, b.path));
  problems.sort((a, b) => comparePaths(a.path, b.path));
  let bytes = 0;
  let files = 0;
  for (const e of entries) {
    if ('link' in e) continue;
    bytes += e.size;
    files++;
  }
  return { entries, problems, bytes, files, links: entries.length - files };
}
