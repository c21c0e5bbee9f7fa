import { statSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { ErrorCode, OctaskError } from '../../../shared/errors';
import { join } from 'node:path';
import { listWorkspaceFiles } from './fileList';
import { HashCache } from './hashCache';
import { buildManifest } from './manifest';
import type { PreparedWorkspace } from './preparedWorkspace';
import { prepareWorkspace, workspaceId } from './preparedWorkspace';

export interface PrepareOptions {
  include?: readonly string[];
  /** Only files matching these globs are synced (a task's `inputs`). */
  inputs?: readonly string[];
  exclude?: readonly string[];
  preserve?: readonly string[];
  /** Lay out a fresh copy on the agent (`--clean`). */
  clean?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Keep up to this many bytes of the small files read for hashing, to send them unread (HashCacheOptions.keepBytes). */
  keepBytes?: number;
}

export interface Prepared {
  workspace: PreparedWorkspace;
  /** Paths left out of the manifest, with why (for warnings). */
  skipped: Array<{ path: string; reason: string }>;
  ms: number;
}

/** Checks that `root` is a folder; the one error a prepare raises itself. */
export function checkWorkspaceRoot(root: string): void {
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) {
    throw new OctaskError(ErrorCode.BadPath, `the workspace ${root} is not a folder`);
  }
}

/** Where the hash cache of workspace `id` is kept: one file per workspace under the user's cache folder. */
export function hashCacheFile(id: string, env: NodeJS.ProcessEnv): string {
  const cacheHome = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(cacheHome, 'octask', 'hashes', `${id}.json`);
}

/** The file set `options` ask for. */
export function listFor(
  root: string,
  options: PrepareOptions,
): ReturnType<typeof listWorkspaceFiles> {
  return listWorkspaceFiles(root, {
    source: 'auto',
    include: options.include,
    exclude: options.exclude,
    only: options.inputs,
  });
}

/**
 * The manifest of the workspace at `root` (git's file set, or every file
 * outside git), hashed through the cache kept under
 * `$XDG_CACHE_HOME/octask/hashes/`, ready to sync.
 */
export async function prepareWorkspaceAt(
  root: string,
  options: PrepareOptions = {},
): Promise<Prepared> {
  const started = performance.now();
  checkWorkspaceRoot(root);
  const id = workspaceId(hostname(), root);
  // The cache is read while git lists the files.
  const [list, cache] = await Promise.all([
    listFor(root, options),
    HashCache.load(hashCacheFile(id, options.env ?? process.env), {
      keepBytes: options.keepBytes,
    }),
  ]);
  const manifest = await buildManifest(root, list.files, cache);
  cache.pruneUnused();
  await cache.save();
  return {
    workspace: prepareWorkspace(
      id,
      root,
      manifest.entries,
      [...(options.preserve ?? [])],
      options.clean ?? false,
      cache.kept,
    ),
    skipped: [...list.skipped, ...manifest.problems],
    ms: Math.round(performance.now() - started),
  };
}
