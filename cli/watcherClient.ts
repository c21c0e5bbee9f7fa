/** The CLI's side of its workspace watcher (see cli/watcherServer.ts). */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import type { Prepared } from '../extension/dispatcher/sync/prepare';
import { prepareWorkspaceAt } from '../extension/dispatcher/sync/prepare';
import type { PreparedWorkspace } from '../extension/dispatcher/sync/preparedWorkspace';
import { workspaceDigest } from '../extension/dispatcher/sync/preparedWorkspace';
import type { ManifestEntry } from '../shared/manifest';
import { manifestDigest } from '../shared/manifestDigest';
import type { WatcherManifest, WatcherReply, WatcherRequest } from './watcherSocket';
import type { EntryColumns } from '../shared/manifestColumns';
import { fromColumns } from '../shared/manifestColumns';
import type { ManifestDelta } from '../shared/manifestDelta';
import {
  envFingerprint,
  readFrames,
  socketPath,
  watcherBuild,
  watcherDir,
  writeFrame,
} from './watcherSocket';

/** A watcher answers at once or not at all: past this the run prepares itself. */
const CONNECT_TIMEOUT_MS = 200;
/** A watcher's first preparation of a big workspace reads it all, as the run would. */
const ANSWER_TIMEOUT_MS = 60_000;

/** One frame sent, one answered; undefined when no watcher answers. */
function ask(path: string, request: unknown, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve) => {
    const socket = connect(path);
    let settled = false;
    const settle = (value: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    let timer = setTimeout(() => settle(undefined), CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      timer = setTimeout(() => settle(undefined), timeoutMs);
      writeFrame(socket, request);
    });
    socket.once('error', () => settle(undefined));
    socket.once('close', () => settle(undefined));
    readFrames(socket, (value) => settle(value));
  });
}

function isReply(v: unknown): v is WatcherReply {
  return typeof v === 'object' && v !== null && typeof (v as { ok?: unknown }).ok === 'boolean';
}

function isManifest(v: unknown): v is WatcherManifest & { ok: true } {
  const entries = (v as { entries?: unknown } | null)?.entries;
  return isReply(v) && v.ok && typeof entries === 'object' && entries !== null;
}

/** Entries from a watcher's columns; undefined for anything that does not make a manifest. */
function entriesOf(columns: unknown): ManifestEntry[] | undefined {
  try {
    return fromColumns(columns as EntryColumns);
  } catch {
    return undefined;
  }
}

export interface WatcherOutcome {
  /** The watcher's preparation, when it gave one. */
  prepared?: Prepared;
  /** Why it did not (none running, another build, other git settings…). */
  why?: string;
  /** Start one for next time (none answered, or it was of another build), with this request to prepare first. */
  start?: WatcherRequest;
}

export interface WatchedPrepareFlags {
  include: string[];
  exclude: string[];
  preserve: string[];
  clean?: boolean;
}

/** The workspace at `root` as the user's watcher prepares it. */
export async function prepareThroughWatcher(
  root: string,
  flags: WatchedPrepareFlags,
  env: NodeJS.ProcessEnv,
): Promise<WatcherOutcome> {
  const dir = watcherDir(env);
  if (!dir) return { why: 'no private folder for its socket' };
  const request: WatcherRequest = {
    build: watcherBuild(),
    env: envFingerprint(env),
    root,
    include: flags.include,
    exclude: flags.exclude,
    preserve: flags.preserve,
    clean: flags.clean ?? false,
  };
  const reply = await ask(socketPath(dir), request, ANSWER_TIMEOUT_MS);
  if (!isReply(reply)) return { why: 'none running', start: request };
  if (!reply.ok)
    return reply.why === 'another build of octask'
      ? { why: reply.why, start: request }
      : { why: reply.why };
  if (
    typeof reply.entriesDigest !== 'string' ||
    !Number.isSafeInteger(reply.count) ||
    !Number.isSafeInteger(reply.bytes)
  )
    return { why: 'its answer did not name a manifest' };
  const deltas = new Map<string, ManifestDelta>();
  for (const d of Array.isArray(reply.deltas) ? reply.deltas : []) {
    const changed = entriesOf(d.changed);
    const removed: unknown = d.removed;
    if (
      changed &&
      typeof d.base === 'string' &&
      Array.isArray(removed) &&
      removed.every((p) => typeof p === 'string')
    )
      deltas.set(d.base, { changed, removed });
  }
  const { entriesDigest } = reply;
  let entries: ManifestEntry[] | undefined;
  let loading: Promise<void> | undefined;
  /** The entries from the watcher, by digest; failing that, this run's own reading of the workspace. */
  const load = async (): Promise<void> => {
    const answer = await ask(
      socketPath(dir),
      { ...request, manifest: entriesDigest },
      ANSWER_TIMEOUT_MS,
    );
    const columns = isManifest(answer) ? answer.entries : undefined;
    const got = entriesOf(columns);
    if (got && manifestDigest(got) === entriesDigest) {
      entries = got;
      workspace.columns = columns;
      return;
    }
    // The watcher left, or let it go: this run's own preparation, if it is still that manifest.
    const own = await prepareWorkspaceAt(root, { ...flags, env });
    if (own.workspace.entriesDigest !== entriesDigest)
      throw new Error('the workspace changed while it was being synced; run again');
    entries = own.workspace.entries;
  };
  const workspace: PreparedWorkspace = {
    id: reply.id,
    root,
    preserve: flags.preserve,
    clean: request.clean,
    entriesDigest,
    digest: workspaceDigest(entriesDigest, flags.preserve, request.clean),
    bytes: reply.bytes,
    entryCount: reply.count,
    get entries(): ManifestEntry[] {
      if (!entries) throw new Error('internal error: the manifest was read before it was loaded');
      return entries;
    },
    // Most runs never need the entries: the agent has the manifest, or takes a delta.
    // Syncs to several agents share one load.
    loadEntries: () => (loading ??= load()),
    deltaFrom: (digest) => deltas.get(digest),
  };
  return {
    prepared: {
      workspace,
      skipped: reply.skipped,
      ms: reply.ms,
    },
    why: `route ${reply.route}, ${reply.ms} ms there`,
  };
}

/**
 * The environment a watcher starts with: the run's, without Octask's own
 * variables (a cluster key exported in the shell stays out of a process
 * that never needs it).
 */
export function watcherEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('OCTASK_')));
}

/** Starts a watcher in the background, detached from this run and its terminal; it prepares `first` at once. */
export function startWatcher(env: NodeJS.ProcessEnv, first: WatcherRequest): void {
  const program = process.argv[1];
  if (!program || !existsSync(program)) return;
  try {
    const child = spawn(process.execPath, [program, 'watcher', '--prime', JSON.stringify(first)], {
      detached: true,
      stdio: 'ignore',
      env: watcherEnvironment(env),
      // Not the workspace: a process whose folder is on a drive keeps it from being unmounted.
      cwd: homedir(),
    });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // A run never fails for its watcher.
  }
}

/**
 * Asks the user's watcher to leave; true if one answered. `probeOnly`:
 * only find out whether one is listening.
 */
export async function stopWatcher(
  env: NodeJS.ProcessEnv,
  options: { probeOnly?: boolean } = {},
): Promise<boolean> {
  const dir = watcherDir(env);
  if (!dir) return false;
  if (options.probeOnly)
    return new Promise((resolve) => {
      const socket = connect(socketPath(dir));
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  return isReply(await ask(socketPath(dir), { stop: true }, 2000));
}
