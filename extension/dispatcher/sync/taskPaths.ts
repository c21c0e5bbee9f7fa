import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, OctaskError } from '../../../shared/errors';
import { createMatcher, globBases, globToRegExp } from '../../../shared/glob';
import type { ManifestEntry, SetupStep } from '../../../shared/protocol';
import type { TaskSpec } from '../../../shared/rpc';
import { checkRelativePath } from '../../../shared/workspacePath';
import type { PreparedWorkspace } from './preparedWorkspace';

/**
 * A task's glob (artifacts, setup key) as the agent matches it: relative to
 * the task's `cwd`, unless it starts with `/` or `${workspaceFolder}`
 * (the workspace root). A name without `/` matches at any depth below cwd.
 */
export function rebaseGlob(glob: string, cwd: string): string {
  let g = glob.replace(/\\/g, '/');
  if (g.startsWith('${workspaceFolder}')) g = `/${g.slice('${workspaceFolder}'.length)}`;
  if (g.startsWith('/')) return `/${g.replace(/^\/+/, '')}`;
  const base = cwd.split('/').filter((p) => p !== '' && p !== '.');
  const parts = g.split('/');
  while (parts[0] === '.' || parts[0] === '..') {
    if (parts.shift() === '..') base.pop();
  }
  const rest = parts.join('/');
  if (base.length === 0) return rest;
  const anywhere = !rest.replace(/\/+$/, '').includes('/');
  return `/${base.join('/')}/${anywhere ? '**/' : ''}${rest}`;
}

/** The task's artifact globs, rebased for the agent. */
export function artifactGlobs(spec: TaskSpec): string[] {
  return (spec.artifacts ?? []).map((g) => rebaseGlob(g, spec.cwd ?? ''));
}

/**
 * Checks what a task asks of its workspace before anything is synced: a
 * run the agent would refuse must not change its copy first. Throws
 * E_BAD_PATH for a cwd, E_BAD_REQUEST for malformed globs or setup (the
 * spec may come over JSON-RPC).
 */
export function checkWorkspaceTask(workspace: PreparedWorkspace, spec: TaskSpec): void {
  const strings = (v: unknown): boolean =>
    Array.isArray(v) && v.every((s) => typeof s === 'string');
  if (spec.artifacts !== undefined && !strings(spec.artifacts))
    throw new OctaskError(ErrorCode.BadRequest, 'artifacts must be a list of globs');
  const setup = spec.setup as { command?: unknown; key?: unknown } | undefined;
  if (
    setup !== undefined &&
    (typeof setup.command !== 'string' ||
      setup.command.trim() === '' ||
      (setup.key !== undefined && !strings(setup.key)))
  )
    throw new OctaskError(ErrorCode.BadRequest, 'setup must be { command, key?: [glob] }');
  checkTaskCwd(workspace, spec.cwd);
}

function checkTaskCwd(workspace: PreparedWorkspace, cwd: string | undefined): void {
  if (cwd !== undefined && typeof cwd !== 'string')
    throw new OctaskError(ErrorCode.BadRequest, 'cwd must be a string');
  const sub = cwd && cwd !== '.' ? cwd : '';
  if (!sub) return;
  const bad = checkRelativePath(sub);
  if (bad) throw new OctaskError(ErrorCode.BadPath, `--cwd ${JSON.stringify(sub)}: ${bad}`);
  if (!statSync(join(workspace.root, sub), { throwIfNoEntry: false })?.isDirectory())
    throw new OctaskError(
      ErrorCode.BadPath,
      `--cwd ${sub}: no such folder in the workspace ${workspace.root}`,
    );
}

/**
 * The run's setup step: the command and a digest of the manifest's hashes
 * of the key files, so the agent runs it again exactly when they change.
 */
export function setupStep(workspace: PreparedWorkspace, spec: TaskSpec): SetupStep | undefined {
  if (!spec.setup) return undefined;
  const matches = createMatcher((spec.setup.key ?? []).map((g) => rebaseGlob(g, spec.cwd ?? '')));
  const digest = createHash('sha256').update(`${spec.setup.command}\0${spec.cwd ?? ''}\n`);
  for (const e of workspace.entries)
    if ('hash' in e && matches(e.path)) digest.update(`${e.path}\0${e.hash}\n`);
  return { command: spec.setup.command, key: digest.digest('hex') };
}

/** The user's artifact globs that matched none of the files the agent reported. */
export function unmatchedArtifactGlobs(spec: TaskSpec, found: readonly ManifestEntry[]): string[] {
  const rebased = artifactGlobs(spec).map(globToRegExp);
  return (spec.artifacts ?? []).filter((_, i) => !found.some((e) => rebased[i]?.test(e.path)));
}

/**
 * Where artifacts land locally. One agent: where they are in its copy.
 * Several (`--target all`): below a folder named for the agent, at the
 * glob's base (`out/**` → `out/pi/...`), so no agent overwrites another's.
 */
export function placeArtifacts(
  spec: TaskSpec,
  entries: readonly ManifestEntry[],
  agent: string | null,
): ManifestEntry[] {
  if (agent === null) return [...entries];
  const folder = agentFolder(agent);
  const globs = artifactGlobs(spec).map((g) => ({ re: globToRegExp(g), bases: globBases(g) }));
  return entries.map((e) => {
    const glob = globs.find((g) => g.re.test(e.path));
    let base = '';
    for (const b of glob?.bases ?? [])
      if ((b === '' || e.path === b || e.path.startsWith(`${b}/`)) && b.length > base.length)
        base = b;
    // A glob naming the file itself: the folder goes beside it.
    if (base === e.path) base = base.includes('/') ? base.slice(0, base.lastIndexOf('/')) : '';
    const rest = base ? e.path.slice(base.length + 1) : e.path;
    return { ...e, path: base ? `${base}/${folder}/${rest}` : `${folder}/${rest}` };
  });
}

/** An agent's name as one safe path segment. */
function agentFolder(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
  return safe === '' || /^\.+$/.test(safe) ? `agent_${safe.length}` : safe;
}
