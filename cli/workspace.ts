import { homedir, hostname } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { ErrorCode, OctaskError } from '../shared/errors';
import { findWorkspaceRoot, listWorkspaceFiles } from '../extension/dispatcher/sync/fileList';
import { HashCache } from '../extension/dispatcher/sync/hashCache';
import { buildManifest } from '../extension/dispatcher/sync/manifest';
import type { PreparedWorkspace } from '../extension/dispatcher/sync/preparedWorkspace';
import { prepareWorkspace, workspaceId } from '../extension/dispatcher/sync/preparedWorkspace';

export interface WorkspaceFlags {
  workspace?: string;
  noSync: boolean;
  include: string[];
  exclude: string[];
  preserve: string[];
  cwd?: string;
}

export interface CliWorkspace {
  prepared: PreparedWorkspace;
  /** Folder within the workspace to run in. */
  cwd: string;
  /** Paths left out of the manifest, with why (shown as warnings). */
  skipped: Array<{ path: string; reason: string }>;
  ms: number;
}

/**
 * The workspace `octask run` syncs: --workspace, else the git work tree
 * around the current folder; none (no sync) outside git or with --no-sync.
 */
export async function prepareCliWorkspace(
  flags: WorkspaceFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<CliWorkspace | null> {
  if (flags.noSync) return null;
  const started = performance.now();
  const here = process.cwd();
  let root: string | null;
  if (flags.workspace !== undefined) {
    root = resolve(flags.workspace);
    if (!existsSync(root) || !statSync(root).isDirectory()) {
      throw new OctaskError(ErrorCode.BadPath, `--workspace ${flags.workspace} is not a folder`);
    }
  } else {
    root = await findWorkspaceRoot(here);
  }
  if (!root) return null;
  const id = workspaceId(hostname(), root);
  const list = await listWorkspaceFiles(root, {
    source: 'auto',
    include: flags.include,
    exclude: flags.exclude,
  });
  const cacheHome = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  const cache = await HashCache.load(join(cacheHome, 'octask', 'hashes', `${id}.json`));
  const manifest = await buildManifest(root, list.files, cache);
  cache.pruneUnused();
  await cache.save();
  const rel = relative(root, here);
  const cwd =
    flags.cwd ??
    (rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel.split('\\').join('/') : '');
  return {
    prepared: prepareWorkspace(id, root, manifest.entries, flags.preserve),
    cwd,
    skipped: [...list.skipped, ...manifest.problems],
    ms: Math.round(performance.now() - started),
  };
}
