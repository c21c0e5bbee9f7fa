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
}

export interface Prepared {
  workspace: PreparedWorkspace;
  /** Paths left out of the manifest, with why (for warnings). */
  skipped: Array<{ path: string; reason: string }>;
  ms: number;
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
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) {
    throw new OctaskError(ErrorCode.BadPath, `the workspace ${root} is not a folder`);
  }
  const env = options.env ?? process.env;
  const id = workspaceId(hostname(), root);
  const list = await listWorkspaceFiles(root, {
    source: 'auto',
    include: options.include,
    exclude: options.exclude,
    only: options.inputs,
  });
  const cacheHome = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  const cache = await HashCache.load(join(cacheHome, 'octask', 'hashes', `${id}.json`));
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
    ),
    skipped: [...list.skipped, ...manifest.problems],
    ms: Math.round(performance.now() - started),
  };
}
