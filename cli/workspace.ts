import { isAbsolute, relative, resolve } from 'node:path';
import { findWorkspaceRoot } from '../extension/dispatcher/sync/fileList';
import { prepareWorkspaceAt } from '../extension/dispatcher/sync/prepare';
import type { PreparedWorkspace } from '../extension/dispatcher/sync/preparedWorkspace';

export interface WorkspaceFlags {
  workspace?: string;
  noSync: boolean;
  include: string[];
  exclude: string[];
  preserve: string[];
  clean?: boolean;
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
  const root =
    flags.workspace !== undefined ? resolve(flags.workspace) : await findWorkspaceRoot(here);
  if (!root) return null;
  const prepared = await prepareWorkspaceAt(root, { ...flags, env });
  const rel = relative(root, here);
  const cwd =
    flags.cwd ??
    (rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel.split('\\').join('/') : '');
  return {
    prepared: prepared.workspace,
    cwd,
    skipped: prepared.skipped,
    ms: Math.round(performance.now() - started),
  };
}
