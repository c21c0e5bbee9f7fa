import { statSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { ErrorCode, OctaskError } from '../../../shared/errors';
import { join } from 'node:path';
import { listWorkspaceFiles } from './fileList';
import { HashCache } from './hashCache';
import { buildManifest } from './manifest';
import type { PreparedWorkspace } from './preparedWorkspace';
import { prepareWorkspace, workspaceId } from './preparedWorkspace';
import type { WorkspaceFeed } from './workspaceFeed';

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
  /** Told each entry as it is hashed, then the result (a streamed first sync reads it). */
  feed?: WorkspaceFeed;
  /**
   * Return before the hash cache is written (`Prepared.saved` says when):
   * a streamed first sync's last part then goes while the cache is encoded.
   */
  saveLater?: boolean;
}

export interface Prepared {
  workspace: PreparedWorkspace;
  /** Paths left out of the manifest, with why (for warnings). */
  skipped: Array<{ path: string; reason: string }>;
  ms: number;
  /** With `saveLater`: the hash cache written; rejects if it could not be. */
  saved?: Promise<void>;
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
  const { feed } = options;
  try {
    const prepared = await prepareAt(root, options);
    feed?.end(prepared.workspace);
    return prepared;
  } catch (err) {
    feed?.end(err as Error);
    throw err;
  }
}

async function prepareAt(root: string, options: PrepareOptions): Promise<Prepared> {
  const started = performance.now();
  checkWorkspaceRoot(root);
  const id = workspaceId(hostname(), root);
  const preserve = [...(options.preserve ?? [])];
  const clean = options.clean ?? false;
  // The cache is read while git lists the files.
  const [list, cache] = await Promise.all([
    listFor(root, options),
    HashCache.load(hashCacheFile(id, options.env ?? process.env), {
      keepBytes: options.keepBytes,
    }),
  ]);
  options.feed?.open({ id, root, preserve, clean, contents: cache.kept });
  const manifest = await buildManifest(root, list.files, cache, undefined, options.feed);
  cache.pruneUnused();
  const workspace = prepareWorkspace(id, root, manifest.entries, preserve, clean, cache.kept);
  // A streamed sync sends its last part now; the cache is written meanwhile.
  options.feed?.end(workspace);
  const skipped = [...list.skipped, ...manifest.problems];
  const took = (): number => Math.round(performance.now() - started);
  if (!options.saveLater) {
    await cache.save();
    return { workspace, skipped, ms: took() };
  }
  // Encoding and writing the cache takes this thread 10-40 ms for 10,000
  // files: put off past this turn, the caller places its task (and the
  // last part goes) first.
  const saved = new Promise<void>((resolve) => setImmediate(resolve)).then(() => cache.save());
  return { workspace, skipped, ms: took(), saved };
}
