/**
 * Which files of a workspace take part in a sync: in a git work tree, what
 * git would consider the project (tracked, plus untracked but not ignored);
 * elsewhere, everything but `.git`. `--include` / `--exclude` globs adjust the
 * set, and a task's `inputs` (`only`) narrow it. Paths come back
 * workspace-relative and `/`-separated; nothing here reads file contents,
 * and a listed path may since have gone (buildManifest leaves it out).
 */
import { execFile } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { checkRelativePath } from '../../../shared/workspacePath';
import type { ManifestProblem } from '../../../shared/manifest';
import { createMatcher, globBases } from '../../../shared/glob';

/** Room for `git ls-files -z` over well beyond 100,000 paths of typical length. */
const GIT_MAX_BUFFER = 256 * 1024 * 1024;

export interface FileListOptions {
  /**
   * 'git': the git file set, failing outside a work tree; 'walk': every file
   * but `.git`; 'auto': git when `root` is in a work tree, else a walk.
   */
  source: 'git' | 'walk' | 'auto';
  /** Globs of files to add even if git ignores them. */
  include?: readonly string[];
  /** Globs of files to leave out; wins over `include`. */
  exclude?: readonly string[];
  /** When given, only files matching one of these globs take part (a task's `inputs`). */
  only?: readonly string[];
}

export interface FileList {
  /** Sorted, unique, workspace-relative paths (tracked ones may be deleted locally). */
  files: string[];
  /** Paths seen but not listed (nested repositories), with why. */
  skipped: ManifestProblem[];
}

/** Runs git in `cwd`, resolving with its stdout. */
export function git(cwd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      args,
      { cwd, maxBuffer: GIT_MAX_BUFFER, encoding: 'utf8', windowsHide: true },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
  });
}

/** The top folder of the git work tree holding `cwd`, or null outside one (or without git). */
export async function findWorkspaceRoot(cwd: string): Promise<string | null> {
  try {
    const top = (await git(cwd, ['rev-parse', '--show-toplevel'])).replace(/\r?\n$/, '');
    return top === '' ? null : top;
  } catch {
    return null;
  }
}

async function isGitWorkTree(dir: string): Promise<boolean> {
  try {
    return (await git(dir, ['rev-parse', '--is-inside-work-tree'])).trim() === 'true';
  } catch {
    return false;
  }
}

function splitNul(out: string): string[] {
  return out.split('\0').filter((p) => p !== '');
}

/**
 * Tracked plus untracked-not-ignored files under `root`, relative to it
 * (git prints paths relative to the folder it runs in), in one git process.
 * Tracked files deleted locally are still listed (asking git for them too
 * would cost a second process lstat'ing every file): buildManifest finds
 * them missing and leaves them out.
 */
function listGitFiles(out: string, skipped: ManifestProblem[]): string[] {
  const files: string[] = [];
  for (const path of splitNul(out)) {
    // An untracked folder holding its own repository is listed as "dir/".
    if (path.endsWith('/')) {
      skipped.push({ path: path.slice(0, -1), reason: 'is a nested git repository; not synced' });
      continue;
    }
    files.push(path);
  }
  return files;
}

const LS_FILES = ['ls-files', '-z', '--cached', '--others', '--exclude-standard'];

/**
 * git's file set, or null when `root` is not in a work tree and `source`
 * allows a walk instead. Outside a work tree ls-files fails, and only then
 * is git asked whether it is one, so a git failure inside a work tree is
 * never mistaken for "no git" (which would sync ignored files).
 */
async function gitFileSet(
  root: string,
  source: FileListOptions['source'],
  skipped: ManifestProblem[],
): Promise<string[] | null> {
  if (source === 'walk') return null;
  try {
    return listGitFiles(await git(root, LS_FILES), skipped);
  } catch (err) {
    if (source === 'auto' && !(await isGitWorkTree(root))) return null;
    throw err;
  }
}

function isGitDir(name: string): boolean {
  return name.toLowerCase() === '.git';
}

/**
 * Every non-folder entry under `root/base` (symlinks included, never
 * followed), skipping `.git`. A `base` that is not a folder yields itself.
 */
export async function walkFiles(root: string, base = ''): Promise<string[]> {
  const files: string[] = [];
  const start = await lstat(join(root, base)).catch(() => null);
  if (!start) return files;
  if (!start.isDirectory()) return base === '' ? files : [base];
  // Iterative, one folder at a time: keeps open handles bounded on huge trees.
  const pending = [base];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    const entries = await readdir(join(root, dir), { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (isGitDir(entry.name)) continue;
      const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory()) pending.push(path);
      else files.push(path);
    }
  }
  return files;
}

async function listIncluded(root: string, patterns: readonly string[]): Promise<string[]> {
  const bases = new Set<string>();
  for (const pattern of patterns) {
    for (const base of globBases(pattern)) {
      // A base that is not a clean relative path ("../x") must not steer the walk outside.
      bases.add(base === '' || checkRelativePath(base) !== null ? '' : base);
    }
  }
  // Walking the whole workspace already covers every narrower base.
  const roots = bases.has('') ? [''] : [...bases];
  const matches = createMatcher(patterns);
  const found = await Promise.all(roots.map((base) => walkFiles(root, base)));
  return found.flat().filter(matches);
}

/** The files of the workspace at `root` that a sync sends. */
export async function listWorkspaceFiles(
  root: string,
  options: FileListOptions,
): Promise<FileList> {
  const skipped: ManifestProblem[] = [];
  const listed = (await gitFileSet(root, options.source, skipped)) ?? (await walkFiles(root));
  const include = options.include ?? [];
  const extra = include.length > 0 ? await listIncluded(root, include) : [];
  const excluded = createMatcher(options.exclude ?? []);
  const wanted = options.only?.length ? createMatcher(options.only) : () => true;
  const files = [...new Set([...listed, ...extra])].filter((p) => !excluded(p) && wanted(p));
  files.sort(comparePaths);
  return { files, skipped };
}

/** Plain code-unit order: the same on every machine, whatever its locale. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
