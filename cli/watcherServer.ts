/**
 * `octask watcher`: the CLI's workspace watcher. A one-shot `octask run`
 * must list and stat every file of the workspace before it can ask an
 * agent anything (some 100 ms for 10,000 files, more than the sync). This
 * process, started in the background by the first run, keeps the editor's
 * kind of watched preparation (WorkspaceWatches) for the workspaces runs
 * ask about, so the next run gets its manifest from what changed since.
 *
 * It holds no key and talks to no agent: it reads the user's workspaces,
 * as the run itself would, and answers only on a socket in a folder only
 * its user can enter. It leaves when idle, when asked, and when a run of
 * another build asks (that run then starts its own).
 */
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { WorkspaceWatches } from '../extension/dispatcher/sync/workspaceWatch';
import { EXIT } from '../shared/exitCode';
import type { PreparedWorkspace } from '../extension/dispatcher/sync/preparedWorkspace';
import { toColumns } from '../shared/manifestColumns';
import type { WatcherManifest, WatcherReply, WatcherRequest } from './watcherSocket';
import {
  envFingerprint,
  readFrames,
  socketPath,
  watcherBuild,
  watcherDir,
  writeFrame,
} from './watcherSocket';
import { stopWatcher } from './watcherClient';

/** Minutes without a request after which the watcher leaves. */
export const IDLE_MINUTES = 15;

export const WATCHER_USAGE = `Usage: octask watcher [--stop]

The workspace watcher that "octask run" starts in the background (Linux),
so that a run after an edit reads only what changed. It holds no key and
leaves after ${IDLE_MINUTES} minutes without a run. --stop: ask it to leave now.
OCTASK_NO_WATCHER=1 keeps runs from using or starting one (off in CI too).
`;

function isRequest(v: unknown): v is WatcherRequest {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  const strings = (x: unknown): boolean =>
    Array.isArray(x) && x.every((s) => typeof s === 'string');
  return (
    typeof r.build === 'string' &&
    typeof r.env === 'string' &&
    typeof r.root === 'string' &&
    r.root.startsWith('/') &&
    strings(r.include) &&
    strings(r.exclude) &&
    strings(r.preserve) &&
    typeof r.clean === 'boolean' &&
    (r.manifest === undefined || typeof r.manifest === 'string')
  );
}

export async function watcherCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      stop: { type: 'boolean' },
      // Internal: the starting run's request, prepared at once so the next run finds it watched.
      prime: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(WATCHER_USAGE);
    return EXIT.ok;
  }
  if (values.stop) {
    const stopped = await stopWatcher(process.env);
    process.stderr.write(`octask: ${stopped ? 'the watcher stopped' : 'no watcher was running'}\n`);
    return EXIT.ok;
  }
  const dir = watcherDir(process.env);
  if (!dir) {
    process.stderr.write('octask: no private folder for the watcher socket; not started\n');
    return EXIT.octaskFailure;
  }
  let prime: unknown;
  try {
    prime = values.prime === undefined ? undefined : (JSON.parse(values.prime) as unknown);
  } catch {
    prime = undefined;
  }
  return serve(socketPath(dir), isRequest(prime) ? prime : undefined);
}

/** Most entries a delta the watcher sends ahead may hold: beyond that the whole manifest is as cheap. */
const DELTA_MAX_ENTRIES = 2000;

/** What differs from each remembered earlier manifest (small differences only). */
function deltasOf(workspace: PreparedWorkspace): Pick<WatcherReply & { ok: true }, 'deltas'> {
  const deltas = (workspace.bases ?? []).flatMap((base) => {
    const delta = workspace.deltaFrom?.(base);
    return delta && delta.changed.length + delta.removed.length <= DELTA_MAX_ENTRIES
      ? [{ base, changed: toColumns(delta.changed), removed: delta.removed }]
      : [];
  });
  return { deltas };
}

async function serve(path: string, prime: WatcherRequest | undefined): Promise<number> {
  const build = watcherBuild();
  const env = envFingerprint(process.env);
  const watches = new WorkspaceWatches();
  let idle: NodeJS.Timeout | undefined;
  let done!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (done = resolve));
  const leave = (): void => {
    clearTimeout(idle);
    watches.close();
    // Closing removes the socket file. A run of another build starts its
    // watcher only once its own run is over, long after this one answered.
    server.close();
    done(EXIT.ok);
  };
  const touch = (): void => {
    clearTimeout(idle);
    idle = setTimeout(leave, IDLE_MINUTES * 60_000);
  };
  // The deltas of the answer per preparation: an unchanged workspace is the same object.
  const answers = new WeakMap<PreparedWorkspace, Pick<WatcherReply & { ok: true }, 'deltas'>>();
  const prepare = async (request: WatcherRequest): Promise<WatcherReply | WatcherManifest> => {
    try {
      const prepared = await watches.prepare(request.root, {
        include: request.include,
        exclude: request.exclude,
        preserve: request.preserve,
        clean: request.clean,
      });
      const { workspace } = prepared;
      if (request.manifest !== undefined) {
        const entries =
          request.manifest === workspace.entriesDigest
            ? workspace.entries
            : workspace.earlier?.(request.manifest);
        return entries
          ? { ok: true, entries: toColumns(entries) }
          : { ok: false, why: 'that manifest is no longer remembered' };
      }
      let deltas = answers.get(workspace);
      if (!deltas) answers.set(workspace, (deltas = deltasOf(workspace)));
      return {
        ok: true,
        id: workspace.id,
        entriesDigest: workspace.entriesDigest,
        count: workspace.entryCount,
        bytes: workspace.bytes,
        ...deltas,
        skipped: prepared.skipped,
        route: prepared.route,
        ms: prepared.ms,
      };
    } catch (err) {
      return { ok: false, why: (err as Error).message };
    }
  };
  const answer = async (socket: Socket, value: unknown): Promise<void> => {
    touch();
    if (
      typeof value === 'object' &&
      value !== null &&
      (value as { stop?: unknown }).stop === true
    ) {
      writeFrame(socket, { ok: false, why: 'stopping' } satisfies WatcherReply);
      socket.end();
      leave();
      return;
    }
    if (!isRequest(value)) {
      writeFrame(socket, { ok: false, why: 'not a watcher request' } satisfies WatcherReply);
      socket.end();
      return;
    }
    if (value.build !== build) {
      // An update or rebuild: the asking run prepares itself and starts a watcher of its build.
      writeFrame(socket, { ok: false, why: 'another build of octask' } satisfies WatcherReply);
      socket.end();
      leave();
      return;
    }
    if (value.env !== env) {
      writeFrame(socket, {
        ok: false,
        why: 'started with other git settings (GIT_*, HOME, XDG_CONFIG_HOME)',
      } satisfies WatcherReply);
      socket.end();
      return;
    }
    writeFrame(socket, await prepare(value));
    socket.end();
  };
  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined);
    readFrames(socket, (value) => void answer(socket, value));
  });
  const listening = await listen(server, path);
  if (!listening) return EXIT.ok;
  touch();
  if (prime) void prepare(prime);
  process.on('SIGTERM', leave);
  process.on('SIGINT', leave);
  return finished;
}

/**
 * Listens on `path`, made 0600 by the umask it is created under. A socket
 * left by a watcher that died is replaced; one that answers means another
 * watcher serves already, and this one leaves (false).
 */
async function listen(server: Server, path: string): Promise<boolean> {
  const attempt = (): Promise<NodeJS.ErrnoException | undefined> =>
    new Promise((resolve) => {
      const old = process.umask(0o177);
      server.once('error', (err) => resolve(err));
      server.listen(path, () => resolve(undefined));
      process.umask(old);
    });
  let err = await attempt();
  if (err?.code === 'EADDRINUSE') {
    if (await stopWatcher(process.env, { probeOnly: true })) return false;
    rmSync(path, { force: true });
    err = await attempt();
  }
  if (err) throw err;
  return true;
}
