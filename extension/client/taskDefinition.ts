import type { TaskSpec } from '../../shared/rpc';
import { parseTarget } from '../../shared/rpc';
import { timeoutSecProblem } from '../../shared/validate';

/** A task of type `octask` as written in tasks.json (see package.json's taskDefinitions). */
export interface OctaskTaskDefinition {
  type: 'octask';
  command: string;
  /** `any` (default), `all`, or an agent's name. */
  target?: string;
  shards?: number;
  /** Seconds. */
  timeout?: number;
  env?: Record<string, string>;
  /** Folder to run in, relative to the workspace folder. */
  cwd?: string;
  /** Globs of workspace files to sync (default: everything git tracks or would track). */
  inputs?: string[];
  /** Globs of files to bring back after the task. */
  artifacts?: string[];
  retries?: number;
  /** Sync the workspace folder to the agent first (default true). */
  sync?: boolean;
  /** A fresh copy: remove what earlier tasks made there (default false). */
  clean?: boolean;
  /** Globs of files on the agent a sync never removes. */
  preserve?: string[];
  /** Run once per agent per content of the `key` files, before the task. */
  setup?: { command: string; key?: string[] };
}

export interface SpecDefaults {
  defaultTarget: string;
  /** The local workspace folder the task belongs to, if any. */
  workspaceRoot: string | undefined;
  syncEnabled: boolean;
}

export type SpecResult =
  { spec: TaskSpec; error?: undefined } | { spec?: undefined; error: string };

/**
 * Turns a task definition (variables already resolved by VS Code) into the
 * spec the dispatcher takes, or says in one line what is wrong with it.
 */
export function specFromDefinition(raw: unknown, defaults: SpecDefaults): SpecResult {
  if (typeof raw !== 'object' || raw === null) return { error: 'the task has no definition' };
  const def = raw as Record<string, unknown>;
  const command = def.command;
  if (typeof command !== 'string' || command.trim() === '')
    return { error: '"command" must be a non-empty string' };
  const problems: string[] = [];
  const count = (name: string, min: number): number | undefined => {
    const v = def[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      problems.push(`"${name}" must be a whole number of at least ${min}`);
      return undefined;
    }
    return v;
  };
  const strings = (name: string): string[] | undefined => {
    const v = def[name];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
      problems.push(`"${name}" must be a list of strings`);
      return undefined;
    }
    return v as string[];
  };
  const shards = count('shards', 1);
  const timeoutSec = count('timeout', 0);
  const badTimeout = timeoutSecProblem(timeoutSec);
  if (badTimeout) problems.push(`"timeout": ${badTimeout}`);
  const retries = count('retries', 0);
  const inputs = strings('inputs');
  const artifacts = strings('artifacts');
  const preserve = strings('preserve');
  const setup = setupOf(def.setup, problems);
  const env = envOf(def.env, problems);
  if (def.target !== undefined && typeof def.target !== 'string')
    problems.push('"target" must be "any", "all" or an agent\'s name');
  if (def.cwd !== undefined && typeof def.cwd !== 'string') problems.push('"cwd" must be a string');
  if (def.sync !== undefined && typeof def.sync !== 'boolean')
    problems.push('"sync" must be true or false');
  if (def.clean !== undefined && typeof def.clean !== 'boolean')
    problems.push('"clean" must be true or false');
  if (problems.length > 0) return { error: problems.join('; ') };

  const sync = defaults.workspaceRoot !== undefined && defaults.syncEnabled && def.sync !== false;
  const spec: TaskSpec = {
    command,
    target: parseTarget(typeof def.target === 'string' ? def.target : defaults.defaultTarget),
    ...(shards !== undefined ? { shards } : {}),
    ...(timeoutSec !== undefined ? { timeoutSec } : {}),
    ...(retries !== undefined ? { retries } : {}),
    ...(env ? { env } : {}),
  };
  const root = defaults.workspaceRoot;
  if (sync && root !== undefined) {
    spec.sync = {
      root,
      ...(inputs ? { inputs } : {}),
      ...(preserve ? { preserve } : {}),
      ...(def.clean === true ? { clean: true } : {}),
    };
    const cwd = typeof def.cwd === 'string' ? relativeCwd(def.cwd, root) : null;
    if (cwd === undefined) return { error: `"cwd" ${String(def.cwd)} is outside the workspace` };
    if (cwd) spec.cwd = cwd;
    // `${workspaceFolder}/dist/**` arrives resolved: the root's own prefix means "from the root".
    if (artifacts) spec.artifacts = artifacts.map((g) => rootRelativeGlob(g, root));
    if (setup)
      spec.setup = {
        command: setup.command,
        key: setup.key.map((g) => rootRelativeGlob(g, root)),
      };
  } else if (artifacts || inputs || setup || preserve) {
    return {
      error:
        '"inputs", "artifacts", "preserve" and "setup" need workspace sync (a folder open, "sync" not false)',
    };
  }
  return { spec };
}

function setupOf(v: unknown, problems: string[]): { command: string; key: string[] } | undefined {
  if (v === undefined) return undefined;
  const o = v as Record<string, unknown>;
  const key = o?.key ?? [];
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof o.command !== 'string' ||
    o.command.trim() === '' ||
    !Array.isArray(key) ||
    !key.every((k) => typeof k === 'string')
  ) {
    problems.push('"setup" must be {"command": "...", "key": ["glob", ...]}');
    return undefined;
  }
  return { command: o.command, key: key as string[] };
}

/** A glob under the absolute workspace root becomes root-anchored (`/dist/**`); others stay cwd-relative. */
function rootRelativeGlob(glob: string, root: string): string {
  const r = root.replace(/\\/g, '/').replace(/\/+$/, '');
  const g = glob.replace(/\\/g, '/');
  return g.startsWith(`${r}/`) ? g.slice(r.length) : glob;
}

function envOf(v: unknown, problems: string[]): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (
    typeof v !== 'object' ||
    v === null ||
    Array.isArray(v) ||
    !Object.values(v).every((s) => typeof s === 'string')
  ) {
    problems.push('"env" must map names to strings');
    return undefined;
  }
  return v as Record<string, string>;
}

/**
 * A cwd as the dispatcher takes it: relative, with forward slashes. VS Code
 * users often write `${workspaceFolder}/sub`, which arrives resolved to an
 * absolute path. Returns undefined when it leads out of the workspace.
 */
function relativeCwd(cwd: string, root: string): string | null | undefined {
  const norm = (p: string): string => p.replace(/\\/g, '/').replace(/\/+$/, '');
  let rel = norm(cwd);
  const r = norm(root);
  if (rel === r) return null;
  if (rel.startsWith(r + '/')) rel = rel.slice(r.length + 1);
  else if (rel.startsWith('/') || /^[A-Za-z]:/.test(rel)) return undefined;
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return undefined;
  return parts.length > 0 ? parts.join('/') : null;
}
