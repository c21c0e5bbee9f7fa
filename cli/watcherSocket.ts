/**
 * What the CLI and its workspace watcher (cli/watcherServer.ts) share: where
 * the socket is, who may use it, which build and environment a watcher
 * serves, and the frames they exchange (a 4-byte length, then msgpack).
 */
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import type { EntryColumns } from '../shared/manifestColumns';
import { OCTASK_VERSION } from '../shared/version';

/** A request: prepare `root` as prepareWorkspaceAt would with these options. */
export interface WatcherRequest {
  /** The asking CLI's build (watcherBuild); a watcher of another build steps down. */
  build: string;
  /** envFingerprint of the asking CLI: git's view of the workspace depends on it. */
  env: string;
  root: string;
  include: string[];
  exclude: string[];
  preserve: string[];
  clean: boolean;
  /**
   * Asks for the manifest with this entriesDigest (one the watcher answered
   * with lately) instead of a preparation: the reply is a WatcherManifest.
   */
  manifest?: string;
}

/** The entries of the manifest a request named (WatcherRequest.manifest). */
export type WatcherManifest = { ok: true; entries: EntryColumns } | { ok: false; why: string };

/**
 * A preparation, told by its digest: most runs need no more (the agent has
 * it, or a delta below), and ask for the entries only when they do.
 */
export type WatcherReply =
  | {
      ok: true;
      id: string;
      /** manifestDigest of the entries, how many, and their files' bytes. */
      entriesDigest: string;
      count: number;
      bytes: number;
      /**
       * What differs from each earlier manifest the watcher remembers
       * (PreparedWorkspace.bases): the run sends one of these to an agent
       * that holds that base, instead of the whole manifest.
       */
      deltas: Array<{ base: string; changed: EntryColumns; removed: string[] }>;
      skipped: Array<{ path: string; reason: string }>;
      /** How the watcher answered (WatchedPrepared.route), for --verbose. */
      route: string;
      ms: number;
    }
  | { ok: false; why: string };

/** The one other thing a watcher is asked: to stop. */
export interface WatcherStop {
  stop: true;
}

/** Longest frame either side takes (a manifest of some 200,000 files). */
const MAX_FRAME = 64 * 1024 * 1024;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export function writeFrame(socket: Socket, value: unknown): void {
  const body = packr.pack(value);
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length);
  socket.write(Buffer.concat([head, body]));
}

/** Calls `onFrame` with each decoded frame from `socket`; a frame over MAX_FRAME or not msgpack ends it. */
export function readFrames(socket: Socket, onFrame: (value: unknown) => void): void {
  let buffered: Buffer = Buffer.alloc(0);
  // A big frame arrives in many chunks: joined once it is whole, not at each.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  socket.on('data', (data: Buffer) => {
    if (
      buffered.length >= 4 &&
      pendingBytes + data.length < 4 + buffered.readUInt32BE(0) - buffered.length
    ) {
      pending.push(data);
      pendingBytes += data.length;
      return;
    }
    buffered = Buffer.concat([buffered, ...pending, data]);
    pending = [];
    pendingBytes = 0;
    while (buffered.length >= 4) {
      const size = buffered.readUInt32BE(0);
      if (size > MAX_FRAME) {
        socket.destroy(new Error(`a frame of ${size} bytes is over ${MAX_FRAME}`));
        return;
      }
      if (buffered.length < 4 + size) return;
      const body = buffered.subarray(4, 4 + size);
      buffered = buffered.subarray(4 + size);
      let value: unknown;
      try {
        value = packr.unpack(body);
      } catch (err) {
        socket.destroy(err as Error);
        return;
      }
      onFrame(value);
    }
  });
}

/**
 * The folder of the socket: `$XDG_CACHE_HOME/octask/watcher` (the hash
 * cache's home, so each cache has its own watcher), made 0700. Undefined
 * when it is not a folder only this user can enter, or the socket's path
 * would be too long for a Unix socket (108 bytes on Linux).
 */
export function watcherDir(env: NodeJS.ProcessEnv): string | undefined {
  const cacheHome = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  const dir = join(cacheHome, 'octask', 'watcher');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    const uid = process.getuid?.();
    if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0)
      return undefined;
  } catch {
    return undefined;
  }
  return socketPath(dir).length < 100 ? dir : undefined;
}

export function socketPath(dir: string): string {
  return join(dir, 'socket');
}

/**
 * This CLI's build: its version and the program file (path and mtime), so
 * that after an update or rebuild an old watcher is not asked.
 */
export function watcherBuild(): string {
  const program = process.argv[1] ?? '';
  let stamp = '';
  try {
    const real = realpathSync(program);
    stamp = `${real}\0${statSync(real).mtimeMs}`;
  } catch {
    stamp = program;
  }
  return `${OCTASK_VERSION}\0${stamp}`;
}

/**
 * What of the environment decides git's file list (GIT_* variables, where
 * its config is): a watcher answers only CLIs that agree on it.
 */
export function envFingerprint(env: NodeJS.ProcessEnv): string {
  const keys = Object.keys(env)
    .filter((k) => k.startsWith('GIT_') || k === 'HOME' || k === 'XDG_CONFIG_HOME')
    .sort();
  return createHash('sha256')
    .update(JSON.stringify(keys.map((k) => [k, env[k]])))
    .digest('hex');
}

/**
 * Whether the CLI uses (and starts) a watcher: on Linux and Android, where
 * workspace watches exist; not in CI (a one-off machine, and a process left
 * behind there would be surprising), nor with OCTASK_NO_WATCHER=1.
 */
export function watcherWanted(env: NodeJS.ProcessEnv): boolean {
  if (process.platform !== 'linux' && process.platform !== 'android') return false;
  if (env.OCTASK_NO_WATCHER === '1') return false;
  return !env.CI || env.CI === 'false' || env.CI === '0';
}
