import { isAbsolute, relative, resolve } from 'node:path';
import { findWorkspaceRoot } from '../extension/dispatcher/sync/fileList';
import { prepareWorkspaceAt } from '../extension/dispatcher/sync/prepare';
import { prepareThroughWatcher, startWatcher } from './watcherClient';
import { watcherWanted } from './watcherSocket';
import type { PreparedWorkspace } from '../extension/dispatcher/sync/preparedWorkspace';
import type { WorkspaceFeed } from '../extension/dispatcher/sync/workspaceFeed';

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
  /** Who prepared it, for --verbose: `watcher (route …)`, or this run and why not the watcher. */
  by: string;
  /**
   * Call once the run is over: waits for the hash cache to be written (a
   * failure is a warning: the next run hashes again), then starts a
   * watcher for the next run, when none answered this one.
   */
  afterRun(): Promise<void>;
}

/**
 * Bytes of small files the CLI keeps from hashing to send unread: a first
 * sync then reads each file once. A one-shot process can afford it; the
 * editor's long-lived dispatcher keeps none.
 */
const KEEP_BYTES = 64 * 1024 * 1024;

/**
 * The workspace `octask run` syncs: --workspace, else the git work tree
 * around the current folder; none (no sync) outside git or with --no-sync.
 * When this run hashes it itself (no watcher answered), each entry also
 * goes to `feed` as it is hashed, for a first sync to stream.
 */
export async function prepareCliWorkspace(
  flags: WorkspaceFlags,
  env: NodeJS.ProcessEnv = process.env,
  feed?: WorkspaceFeed,
): Promise<CliWorkspace | null> {
  if (flags.noSync) return null;
  const started = performance.now();
  const here = process.cwd();
  const root =
    flags.workspace !== undefined ? resolve(flags.workspace) : await findWorkspaceRoot(here);
  if (!root) return null;
  const watched = watcherWanted(env) ? await prepareThroughWatcher(root, flags, env) : undefined;
  const prepared =
    watched?.prepared ??
    (await prepareWorkspaceAt(root, {
      ...flags,
      env,
      keepBytes: KEEP_BYTES,
      feed,
      saveLater: true,
    }));
  // Never left unhandled, whenever the run gets to afterRun.
  const saved = (prepared.saved ?? Promise.resolve()).then(
    () => undefined,
    (err: Error) => err,
  );
  const rel = relative(root, here);
  const cwd =
    flags.cwd ??
    (rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel.split('\\').join('/') : '');
  return {
    prepared: prepared.workspace,
    cwd,
    skipped: prepared.skipped,
    ms: Math.round(performance.now() - started),
    by: watched?.prepared
      ? `the watcher (${watched.why ?? ''})`
      : `this run${watched ? ` (watcher: ${watched.why ?? ''})` : ''}`,
    // Started once the run is over, so its first preparation (hash cache
    // warm by then) does not take the CPU and disk from this run's sync.
    afterRun: async () => {
      const failed = await saved;
      if (failed)
        process.stderr.write(
          `octask: warning: the hash cache was not saved (${failed.message}); the next run reads every file again\n`,
        );
      const first = watched?.start;
      if (first) startWatcher(env, first);
    },
  };
}
