/**
 * The `sync` section of the bench: a generated git workspace (10,000 files,
 * ~20 MB, ~100 folders by default) synced to a loopback agent with TLS on,
 * first / no change / one file changed, three ways side by side:
 *
 * - the built CLI, run as a user would (`octask run --json -- true` from
 *   inside the repository, a fresh $XDG_CACHE_HOME and a fresh agent):
 *   process wall time, and `sync.ms`/`filesSent`/`bytesSent` from its JSON;
 * - an in-process Dispatcher (a new one per sync, as the CLI makes, connected
 *   before the clock starts): from the start of the workspace preparation to
 *   the 'sync' event, so no node start-up and no connection set-up;
 * - `rsync -a --delete` to an rsync daemon on 127.0.0.1 (installed with
 *   apt-get when missing; its column is left out if that fails).
 *
 * First syncs have a fourth: the Node floor (nodeFloor.ts), a bare sender
 * and receiver that do only what any Node sync must, so the table tells
 * the runtime's share of the gap to rsync from Octask's own.
 *
 * Then where a no-change sync goes: the dispatcher's manifest build step by
 * step, the manifest's encoding and decoding, the agent's layout (from its
 * "workspace synced" log line), and what is left (the round trips).
 */
import type { ChildProcess } from 'node:child_process';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { availableParallelism, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNewKey } from '../agent/keyFile';
import { stopWatcher } from '../cli/watcherClient';
import { prepareCliWorkspace } from '../cli/workspace';
import { Dispatcher } from '../extension/dispatcher/dispatcher';
import { listWorkspaceFiles } from '../extension/dispatcher/sync/fileList';
import { HashCache } from '../extension/dispatcher/sync/hashCache';
import { WorkspaceWatches } from '../extension/dispatcher/sync/workspaceWatch';
import { buildManifest } from '../extension/dispatcher/sync/manifest';
import { prepareWorkspace, workspaceId } from '../extension/dispatcher/sync/preparedWorkspace';
import type { ClusterKey } from '../shared/clusterKey';
import { decodeMessage, encodeMessage } from '../shared/codec';
import { FINAL_STATUSES } from '../shared/protocol';
import type { SyncInfo, TaskInfo } from '../shared/rpc';
import type { StartedAgent } from '../test/helpers/agentProcess';
import { cleanOctaskEnv, runCli, startAgent } from '../test/helpers/agentProcess';
import { cpuDuring } from './cpuTime';
import type { FloorSync } from './nodeFloor';
import { floorSync } from './nodeFloor';
import { MB, num, percentile } from './stats';

export interface SyncBenchOptions {
  files: number;
  bytes: number;
  /** Leaf folders the files are spread over. */
  folders: number;
  /** No-change syncs per method (the median is shown). */
  repeat: number;
  agentNodeArgs: string[];
  /** Where agents keep their copies and rsync writes; the workspace stays in the temporary folder. */
  syncDir?: string;
}

export interface SyncBenchResult {
  /** Rows for the bench's table: measure, octask, local, aim. */
  rows: string[][];
  notes: string[];
  figures: Record<string, number>;
}

/** Files newer than this are not remembered by the dispatcher's hash cache (HashCache's racyWindowMs, 2 s). */
const RACY_WINDOW_MS = 2000;
/** The issue's reference, rsync over a multiplexed ssh on loopback: first / no change / one file. */
const RSYNC_SSH_REFERENCE = '~470 / 100 / 135 ms';
const NO_CHANGE_AIM_MS = 50;
/** First syncs per method in the main case (the median is shown). */
const FIRST_ROUNDS = 3;
const ONE_FILE_AIM_MS = 100;
/** How long the rsync daemon is given to reap the child that served a transfer before its CPU is read. */
const RSYNC_REAP_MS = 200;

/** CPU milliseconds (user + system) each end of a first sync used; undefined without /proc. */
interface FirstSyncCpu {
  cli?: number;
  agent?: number;
  rsyncClient?: number;
  rsyncDaemon?: number;
}

/** Writes dirty pages out (sync(1)), so one method's first sync does not pay for the previous one's writes. */
function flushDisk(): void {
  spawnSync('sync', { stdio: 'ignore' });
}

const median = (xs: readonly number[]): number => percentile(xs, 50);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const ms = (x: number, decimals = 0): string => `${num(x, decimals)} ms`;
/** a / b to two places, or n/a when either is missing (no /proc: CPU figures are NaN). */
const ratioOf = (a: number, b: number): string =>
  Number.isFinite(a / b) ? (a / b).toFixed(2) : 'n/a';

function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < MB) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / MB).toFixed(1)} MB`;
}

// ---- the workspace ----

interface Workspace {
  root: string;
  files: number;
  bytes: number;
  folders: number;
  /** The file changed for the one-file-change syncs (relative). */
  changed: string;
  /** Date.now() after the last file was written. */
  writtenAt: number;
  gitMs: number;
}

function gitIn(cwd: string, ...args: string[]): void {
  const r = spawnSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
  });
  if (r.status !== 0)
    throw new Error(`git ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()}`);
}

/** A small deterministic generator, so every run makes the same tree shape. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `files` files of log-normally varied sizes (a few hundred bytes to a few
 * hundred KB) totalling about `bytes`, over `folders` leaf folders (two levels),
 * each file's content unique; committed to a fresh git repository.
 */
function makeWorkspace(parent: string, files: number, bytes: number, folders: number): Workspace {
  const root = join(parent, 'ws');
  mkdirSync(root);
  const random = rng(4);
  const gauss = (): number =>
    Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const weights = Array.from({ length: files }, () => Math.exp(1.1 * gauss()));
  const scale = bytes / weights.reduce((s, w) => s + w, 0);
  // Text-like content from one pool; each file starts with its own header line, so no two are alike.
  const pool = Buffer.from(
    Buffer.from(Array.from({ length: 3 * MB }, () => Math.floor(random() * 256))).toString(
      'base64',
    ),
  );
  const top = Math.max(1, Math.round(Math.sqrt(folders)));
  const extensions = ['ts', 'js', 'json', 'md', 'css', 'txt', 'sh'];
  let total = 0;
  const made = new Set<string>();
  for (let i = 0; i < files; i++) {
    const leaf = i % folders;
    const folder = `pkg-${String(leaf % top).padStart(2, '0')}/mod-${String(leaf).padStart(3, '0')}`;
    if (!made.has(folder)) {
      mkdirSync(join(root, folder), { recursive: true });
      made.add(folder);
    }
    const ext = extensions[i % extensions.length] as string;
    const rel = `${folder}/file-${String(i).padStart(5, '0')}.${ext}`;
    const head = Buffer.from(`# ${rel} (${i})\n`);
    const size = Math.max(head.length + 16, Math.round((weights[i] as number) * scale));
    const bodyLength = Math.min(size - head.length, pool.length);
    const at = Math.floor(random() * (pool.length - bodyLength));
    const content = Buffer.concat([head, pool.subarray(at, at + bodyLength)]);
    writeFileSync(join(root, rel), content);
    if (ext === 'sh') chmodSync(join(root, rel), 0o755);
    total += content.length;
  }
  const writtenAt = Date.now();
  const gitStarted = performance.now();
  gitIn(root, 'init', '-q', '-b', 'main');
  gitIn(root, 'config', 'user.name', 'Octask Bench');
  gitIn(root, 'config', 'user.email', 'bench@octask.invalid');
  // 10,000 loose objects would start a detached `git gc --auto` after the
  // commit, packing in the background while the rows are measured.
  gitIn(root, 'config', 'gc.auto', '0');
  gitIn(root, 'add', '-A');
  gitIn(root, 'commit', '-q', '-m', 'bench workspace');
  return {
    root,
    files,
    bytes: total,
    folders: made.size,
    changed: `pkg-00/mod-000/file-00000.${extensions[0]}`,
    writtenAt,
    gitMs: performance.now() - gitStarted,
  };
}

// ---- octask: the CLI ----

interface CliSync {
  wallMs: number;
  syncMs: number;
  filesSent: number;
  bytesSent: number;
  layoutMs: number;
}

/** The median of each figure of several runs of one kind. */
function medianSync(runs: readonly CliSync[]): CliSync {
  const of = (f: (c: CliSync) => number): number => median(runs.map(f));
  return {
    wallMs: of((c) => c.wallMs),
    syncMs: of((c) => c.syncMs),
    filesSent: of((c) => c.filesSent),
    bytesSent: of((c) => c.bytesSent),
    layoutMs: of((c) => c.layoutMs),
  };
}

/** The agent's "workspace synced" record logged after index `from` (it may trail the sync event a little). */
async function layoutMs(agent: StartedAgent, from: number): Promise<number> {
  for (let waited = 0; waited <= 1000; waited += 10) {
    // A layout logs "workspace synced", a syncCheck answered from the record "workspace checked".
    const record = agent.logs
      .slice(from)
      .find((r) => r.msg === 'workspace synced' || r.msg === 'workspace checked');
    if (record) return typeof record.ms === 'number' ? record.ms : NaN;
    await sleep(10);
  }
  return NaN;
}

async function cliRun(
  ws: Workspace,
  agent: StartedAgent,
  keyFile: string,
  cacheHome: string,
  sync: boolean,
  /** Use (and start) the CLI's workspace watcher, as a user's shell on Linux does. */
  watcher = false,
): Promise<CliSync> {
  const mark = agent.logs.length;
  const args = ['run', '--agent', agent.address, '--key-file', keyFile, '--no-mdns', '--json'];
  if (!sync) args.push('--no-sync');
  const started = performance.now();
  const r = await runCli([...args, '--', 'true'], {
    cwd: ws.root,
    env: {
      ...cleanOctaskEnv(),
      XDG_CACHE_HOME: cacheHome,
      OCTASK_NO_WATCHER: watcher ? '0' : '1',
      CI: '',
    },
  });
  const wallMs = performance.now() - started;
  let out: {
    tasks?: Array<{ status?: string }>;
    sync?: { files: number; filesSent: number; bytesSent: number; ms: number };
  };
  try {
    out = JSON.parse(r.stdout) as typeof out;
  } catch {
    throw new Error(
      `octask run exited ${r.code} without JSON; stderr: ${r.stderr.trim().slice(-500)}`,
    );
  }
  if (r.code !== 0 || out.tasks?.[0]?.status !== 'completed')
    throw new Error(`octask run exited ${r.code}: ${r.stdout.trim()} ${r.stderr.trim()}`);
  if (!sync) return { wallMs, syncMs: NaN, filesSent: 0, bytesSent: 0, layoutMs: NaN };
  if (!out.sync) throw new Error(`octask run --json gave no "sync": ${r.stdout.trim()}`);
  if (out.sync.files !== ws.files)
    throw new Error(`octask synced ${out.sync.files} files, expected ${ws.files}`);
  return {
    wallMs,
    syncMs: out.sync.ms,
    filesSent: out.sync.filesSent,
    bytesSent: out.sync.bytesSent,
    layoutMs: await layoutMs(agent, mark),
  };
}

// ---- octask: an in-process Dispatcher ----

interface InProcessSync {
  /** Start of the workspace preparation to the 'sync' event. */
  ms: number;
  prepareMs: number;
  connectMs: number;
  info: SyncInfo;
  layoutMs: number;
}

async function connected(key: ClusterKey, address: string): Promise<Dispatcher> {
  const d = new Dispatcher({ key, agents: [address], mdns: false });
  d.start();
  await d.settled();
  const info = d.agents()[0];
  if (!info || (info.status !== 'online' && info.status !== 'busy')) {
    d.close();
    throw new Error(
      `the dispatcher could not connect to ${address}: ${info?.lastError?.message ?? info?.status ?? 'no agent'}`,
    );
  }
  return d;
}

/** Submits `true` with the workspace; resolves on its final 'task' event. */
function submitTrue(
  d: Dispatcher,
  prepared: Awaited<ReturnType<typeof prepareCliWorkspace>>,
): Promise<TaskInfo> {
  if (!prepared) throw new Error('the workspace was not prepared');
  const [info] = d.submit(
    { command: 'true', lostRetries: 0, cwd: prepared.cwd },
    prepared.prepared,
  );
  if (!info) throw new Error('submit made no task');
  // The task cannot end inside submit() unless it failed there: its sync needs the network first.
  const id = info.id;
  let settle!: (info: TaskInfo) => void;
  const done = new Promise<TaskInfo>((res) => (settle = res));
  const off = d.on('task', (t) => {
    if (t.id === id && FINAL_STATUSES.has(t.status)) settle({ ...t });
  });
  const record = d.tasks.get(id);
  if (record?.phase.phase === 'final') settle({ ...record.info });
  return done.then((final) => {
    off();
    if (final.status !== 'completed')
      throw new Error(
        `the synced task ended ${final.status}: ${final.error?.message ?? `exit ${final.exitCode}`}`,
      );
    return final;
  });
}

function prepareIn(root: string, cacheHome: string): ReturnType<typeof prepareCliWorkspace> {
  return prepareCliWorkspace(
    { workspace: root, noSync: false, include: [], exclude: [], preserve: [] },
    { ...process.env, XDG_CACHE_HOME: cacheHome },
  );
}

/** One sync by a fresh dispatcher (as each CLI run makes), connected before the clock starts. */
async function inProcessRun(
  key: ClusterKey,
  agent: StartedAgent,
  root: string,
  cacheHome: string,
): Promise<InProcessSync> {
  const connectStarted = performance.now();
  const d = await connected(key, agent.address);
  const connectMs = performance.now() - connectStarted;
  try {
    const mark = agent.logs.length;
    let synced!: (s: SyncInfo) => void;
    const syncEvent = new Promise<SyncInfo>((res) => (synced = res));
    const off = d.on('sync', (s) => synced(s));
    const started = performance.now();
    const prepared = await prepareIn(root, cacheHome);
    const prepareMs = performance.now() - started;
    const task = submitTrue(d, prepared);
    const info = await syncEvent;
    const total = performance.now() - started;
    off();
    if (info.error) throw new Error(`in-process sync failed: ${info.error.message}`);
    await task;
    return { ms: total, prepareMs, connectMs, info, layoutMs: await layoutMs(agent, mark) };
  } finally {
    d.close();
  }
}

/** How the editor's long-lived dispatcher prepares a workspace: through its watch of the folders. */
async function prepareLongLived(
  watches: WorkspaceWatches,
  root: string,
  cacheHome: string,
): ReturnType<typeof prepareCliWorkspace> {
  const p = await watches.prepare(root, { env: { ...process.env, XDG_CACHE_HOME: cacheHome } });
  return {
    prepared: p.workspace,
    cwd: '',
    skipped: p.skipped,
    ms: p.ms,
    by: 'WorkspaceWatches',
    afterRun: () => Promise.resolve(),
  };
}

/** The dispatcher side of a sync, step by step (the same calls prepareWorkspaceAt makes). */
async function manifestSteps(root: string, cacheHome: string): Promise<Record<string, number>> {
  const t0 = performance.now();
  const list = await listWorkspaceFiles(root, { source: 'auto', include: [], exclude: [] });
  const t1 = performance.now();
  const id = workspaceId(hostname(), root);
  const cache = await HashCache.load(join(cacheHome, 'octask', 'hashes', `${id}.json`));
  const t2 = performance.now();
  const manifest = await buildManifest(root, list.files, cache);
  const t3 = performance.now();
  cache.pruneUnused();
  await cache.save();
  const t4 = performance.now();
  prepareWorkspace(id, root, manifest.entries, []);
  const t5 = performance.now();
  // The manifest as the agent gets it: `sync` frames of 5,000 entries, packed, then unpacked and checked.
  const frames: Buffer[] = [];
  for (let i = 0; i < manifest.entries.length; i += 5000)
    frames.push(
      encodeMessage({
        t: 'sync',
        sync: 'bench',
        workspace: id,
        entries: manifest.entries.slice(i, i + 5000),
        preserve: [],
        last: i + 5000 >= manifest.entries.length,
      }),
    );
  const t6 = performance.now();
  for (const f of frames) decodeMessage(f);
  const t7 = performance.now();
  if (cache.misses > 0 && cache.hits === 0)
    throw new Error('the hash cache answered nothing on a no-change manifest');
  return {
    gitList: t1 - t0,
    cacheLoad: t2 - t1,
    statAndHash: t3 - t2,
    cacheSave: t4 - t3,
    digest: t5 - t4,
    encode: t6 - t5,
    decode: t7 - t6,
    frameBytes: frames.reduce((s, f) => s + f.length, 0),
    cacheMisses: cache.misses,
  };
}

// ---- rsync ----

function haveRsync(): boolean {
  return spawnSync('sh', ['-c', 'command -v rsync'], { stdio: 'ignore' }).status === 0;
}

/** rsync, installed with apt-get if it is missing and we may; a reason when it is unavailable. */
function ensureRsync(log: (line: string) => void): string | null {
  if (haveRsync()) return null;
  if (process.getuid?.() !== 0) return 'not installed, and installing it needs root';
  if (spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status !== 0)
    return 'not installed, and there is no apt-get';
  log('  rsync is missing: installing it with apt-get (not timed)');
  const apt = (...args: string[]): boolean =>
    spawnSync('apt-get', args, {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 120_000,
    }).status === 0;
  if (!apt('install', '-y', '-q', 'rsync')) apt('update', '-q');
  if (!haveRsync() && !apt('install', '-y', '-q', 'rsync'))
    return 'not installed, and apt-get could not install it';
  return haveRsync() ? null : 'still missing after apt-get install';
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => res(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      res(true);
    });
    socket.once('error', () => res(false));
  });
}

interface RsyncDaemon {
  url: string;
  /** The daemon's process: each transfer is a child of it, reaped when done. */
  pid: number | undefined;
  stop(): Promise<void>;
}

/** An rsync daemon on 127.0.0.1, module `mod` writing into `dest`, as the current user. */
/** rsync installed if it can be, and its daemon serving `out`'s destination; or why not. */
async function rsyncFor(
  dir: string,
  out: WritePlace,
): Promise<{ unavailable: string | null; daemon?: RsyncDaemon }> {
  const unavailable = ensureRsync((line) => console.log(line));
  const dest = join(out.dir, 'rsync-dest');
  mkdirSync(dest);
  return unavailable ? { unavailable } : { unavailable, daemon: await startRsyncDaemon(dir, dest) };
}

async function startRsyncDaemon(dir: string, dest: string): Promise<RsyncDaemon> {
  const port = await freePort();
  mkdirSync(`${dest}-first`, { recursive: true });
  const conf = join(dir, 'rsyncd.conf');
  writeFileSync(
    conf,
    [
      `pid file = ${join(dir, 'rsyncd.pid')}`,
      `lock file = ${join(dir, 'rsyncd.lock')}`,
      `log file = ${join(dir, 'rsyncd.log')}`,
      'use chroot = no',
      `uid = ${process.getuid?.() ?? 0}`,
      `gid = ${process.getgid?.() ?? 0}`,
      '[mod]',
      `  path = ${dest}`,
      '  read only = no',
      // Fresh destinations for the rounds of first syncs, away from mod's --delete.
      '[first]',
      `  path = ${dest}-first`,
      '  read only = no',
      '',
    ].join('\n'),
  );
  const proc: ChildProcess = spawn(
    'rsync',
    ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, '--address=127.0.0.1'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((res) => proc.once('exit', () => res()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
  };
  for (let waited = 0; waited < 5000; waited += 20) {
    if (proc.exitCode !== null) break;
    if (await canConnect(port))
      return { url: `rsync://127.0.0.1:${port}/mod/`, pid: proc.pid, stop };
    await sleep(20);
  }
  await stop();
  throw new Error(`the rsync daemon did not listen on ${port}: ${stderr.trim()}`);
}

function timeRsync(src: string, url: string): Promise<number> {
  return new Promise((res, rej) => {
    const started = performance.now();
    const child = spawn('rsync', ['-a', '--delete', '--exclude', '.git', `${src}/`, url], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', rej);
    child.once('close', (code) =>
      code === 0
        ? res(performance.now() - started)
        : rej(new Error(`rsync exited with ${code}: ${stderr.trim()}`)),
    );
  });
}

// ---- the section ----

export async function syncBench(options: SyncBenchOptions): Promise<SyncBenchResult> {
  const notes: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'octask-syncbench-'));
  const out = writePlace(options, dir);
  const agents: StartedAgent[] = [];
  let rsyncd: RsyncDaemon | undefined;
  try {
    const setupStarted = performance.now();
    const ws = makeWorkspace(dir, options.files, options.bytes, options.folders);
    const keyFile = join(dir, 'key');
    const key = writeNewKey(keyFile);
    const start = (name: string): Promise<StartedAgent> =>
      startAgent({
        keyFile,
        name,
        maxJobs: 2,
        nodeArgs: options.agentNodeArgs,
        ...out.agent(name),
      }).then((a) => {
        agents.push(a);
        return a;
      });
    const cliAgent = await start('sync-cli');
    const inProcAgent = await start('sync-inproc');
    const cliCache = join(dir, 'cache-cli');
    const inProcCache = join(dir, 'cache-inproc');
    const { unavailable: rsyncUnavailable, daemon } = await rsyncFor(dir, out);
    rsyncd = daemon;
    // A real checkout is older than the hash cache's racy window; a fresh one would be re-read every time.
    await sleep(Math.max(0, ws.writtenAt + RACY_WINDOW_MS + 100 - Date.now()));
    const setupMs = performance.now() - setupStarted;

    const mustSend = (what: string, sent: number, expected: number): void => {
      if (sent !== expected) throw new Error(`${what} sent ${sent} files, expected ${expected}`);
    };

    // First syncs in rounds, rsync, the CLI and the Node floor in turn, each
    // to a fresh destination (a new agent and cache for the CLI after the
    // first), and the medians shown: creating files on this disk costs
    // several times more for a minute after many were deleted
    // (../shared/notes), which a single run can hit for one and not the
    // other. Each with the CPU both ends used: the CLI and the rsync client
    // as the bench's children, the agent and the rsync daemon (a child of it
    // per transfer) by their processes.
    const firsts: Array<{ cli: CliSync; rsync: number; cpu: FirstSyncCpu; floor: FloorSync }> = [];
    for (let round = 0; round < FIRST_ROUNDS; round++) {
      flushDisk();
      const rsync = daemon
        ? await cpuDuring(
            [{ pid: 'self', childrenOnly: true }, ...(daemon.pid ? [{ pid: daemon.pid }] : [])],
            () =>
              timeRsync(
                ws.root,
                round === 0 ? daemon.url : `${daemon.url.replace(/\/mod\/$/, '/first/')}${round}/`,
              ),
            RSYNC_REAP_MS,
          )
        : { result: NaN, cpu: [] };
      flushDisk();
      const agent = round === 0 ? cliAgent : await start(`sync-first-${round}`);
      const cache = round === 0 ? cliCache : join(dir, `cache-${round}`);
      const cli = await cpuDuring(
        [{ pid: 'self', childrenOnly: true }, ...(agent.proc.pid ? [{ pid: agent.proc.pid }] : [])],
        () => cliRun(ws, agent, keyFile, cache, true),
      );
      mustSend('a first CLI sync', cli.result.filesSent, ws.files);
      flushDisk();
      const floor = await floorSync(ws.root, join(out.dir, `floor-${round}`), keyFile);
      firsts.push({
        cli: cli.result,
        rsync: rsync.result,
        floor,
        cpu: {
          cli: cli.cpu[0],
          agent: cli.cpu[1],
          rsyncClient: rsync.cpu[0],
          rsyncDaemon: rsync.cpu[1],
        },
      });
    }
    const medianBy = (f: (c: CliSync) => number): number => median(firsts.map((x) => f(x.cli)));
    const cliFirst: CliSync = {
      ...(firsts[0] as { cli: CliSync }).cli,
      wallMs: medianBy((c) => c.wallMs),
      syncMs: medianBy((c) => c.syncMs),
      layoutMs: medianBy((c) => c.layoutMs),
    };
    const rsyncFirst = median(firsts.map((x) => x.rsync));
    const cpuOf = (f: (c: FirstSyncCpu) => number | undefined): number =>
      median(firsts.map((x) => f(x.cpu) ?? NaN));
    const firstCpu = {
      cli: cpuOf((c) => c.cli),
      agent: cpuOf((c) => c.agent),
      octask: cpuOf((c) => (c.cli ?? NaN) + (c.agent ?? NaN)),
      rsyncClient: cpuOf((c) => c.rsyncClient),
      rsyncDaemon: cpuOf((c) => c.rsyncDaemon),
      rsync: cpuOf((c) => (c.rsyncClient ?? NaN) + (c.rsyncDaemon ?? NaN)),
    };
    const floorFirst = {
      wallMs: median(firsts.map((x) => x.floor.wallMs)),
      cpu: median(firsts.map((x) => (x.floor.senderCpu ?? NaN) + (x.floor.receiverCpu ?? NaN))),
      senderCpu: median(firsts.map((x) => x.floor.senderCpu ?? NaN)),
      receiverCpu: median(firsts.map((x) => x.floor.receiverCpu ?? NaN)),
    };
    const copyOnDisk = diskBytes(join(cliAgent.workdir, 'workspaces'));
    // A user's next runs: the first of them starts the CLI's watcher (not
    // timed), which the timed ones then ask; the same runs without it too.
    await cliRun(ws, cliAgent, keyFile, cliCache, true, true);
    await untilWatcherListens(cliCache);
    const cliSame: CliSync[] = [];
    for (let i = 0; i < options.repeat; i++)
      cliSame.push(await cliRun(ws, cliAgent, keyFile, cliCache, true, true));
    for (const s of cliSame) mustSend('a no-change CLI sync', s.filesSent, 0);
    const cliSameAlone: CliSync[] = [];
    for (let i = 0; i < options.repeat; i++)
      cliSameAlone.push(await cliRun(ws, cliAgent, keyFile, cliCache, true));
    for (const s of cliSameAlone)
      mustSend('a no-change CLI sync without the watcher', s.filesSent, 0);
    const cliNoSync: number[] = [];
    for (let i = 0; i < options.repeat; i++)
      cliNoSync.push((await cliRun(ws, cliAgent, keyFile, cliCache, false)).wallMs);

    flushDisk();
    const inFirst = await inProcessRun(key, inProcAgent, ws.root, inProcCache);
    mustSend('the first in-process sync', inFirst.info.filesSent, ws.files);
    const inSame: InProcessSync[] = [];
    for (let i = 0; i < options.repeat; i++)
      inSame.push(await inProcessRun(key, inProcAgent, ws.root, inProcCache));
    for (const s of inSame) mustSend('a no-change in-process sync', s.info.filesSent, 0);
    const steps: Array<Record<string, number>> = [];
    for (let i = 0; i < options.repeat; i++) steps.push(await manifestSteps(ws.root, inProcCache));

    const rsyncSame: number[] = [];
    if (rsyncd)
      for (let i = 0; i < options.repeat; i++) rsyncSame.push(await timeRsync(ws.root, rsyncd.url));

    // One file changed (a line appended, so its size changes too), the same
    // file for everyone: `repeat` changes, each synced by the CLI through its
    // watcher and by rsync, then as many by the CLI without the watcher.
    const change = (why: string): void =>
      appendFileSync(join(ws.root, ws.changed), `${why} at ${new Date().toISOString()}\n`);
    const cliOnes: CliSync[] = [];
    const rsyncOnes: number[] = [];
    for (let i = 0; i < options.repeat; i++) {
      change('changed');
      cliOnes.push(await cliRun(ws, cliAgent, keyFile, cliCache, true, true));
      if (rsyncd) rsyncOnes.push(await timeRsync(ws.root, rsyncd.url));
    }
    for (const x of cliOnes) mustSend('a one-file CLI sync', x.filesSent, 1);
    const cliOneAlones: CliSync[] = [];
    for (let i = 0; i < options.repeat; i++) {
      change('changed for a run without the watcher');
      cliOneAlones.push(await cliRun(ws, cliAgent, keyFile, cliCache, true));
    }
    for (const x of cliOneAlones)
      mustSend('a one-file CLI sync without the watcher', x.filesSent, 1);
    const cliOne = medianSync(cliOnes);
    const cliOneAlone = medianSync(cliOneAlones);
    const inOne = await inProcessRun(key, inProcAgent, ws.root, inProcCache);
    mustSend('the one-file in-process sync', inOne.info.filesSent, 1);
    const rsyncOne = rsyncd ? median(rsyncOnes) : NaN;

    // A long-lived dispatcher (the editor's): it keeps its connection, and prepares as the editor's does.
    const d = await connected(key, inProcAgent.address);
    const watches = new WorkspaceWatches();
    const longLived = { noChange: NaN, noChangeSync: NaN, oneFile: NaN, oneFileSync: NaN };
    try {
      const timed = async (): Promise<{ prepareMs: number; syncMs: number }> => {
        let synced!: () => void;
        const syncEvent = new Promise<void>((res) => (synced = res));
        const off = d.on('sync', () => synced());
        const started = performance.now();
        const prepared = await prepareLongLived(watches, ws.root, inProcCache);
        const prepareMs = performance.now() - started;
        const task = submitTrue(d, prepared);
        await syncEvent;
        const syncMs = performance.now() - started;
        off();
        await task;
        return { prepareMs, syncMs };
      };
      await timed();
      const same = await timed();
      appendFileSync(join(ws.root, ws.changed), `changed again at ${new Date().toISOString()}\n`);
      const one = await timed();
      Object.assign(longLived, {
        noChange: same.prepareMs,
        noChangeSync: same.syncMs,
        oneFile: one.prepareMs,
        oneFileSync: one.syncMs,
      });
    } finally {
      watches.close();
      d.close();
    }

    // ---- rows ----
    const title = `sync ${ws.files.toLocaleString('en-US')} files / ${num(ws.bytes / MB, 1)} MB`;
    const sameWall = median(cliSame.map((s) => s.wallMs));
    const sameSyncMs = median(cliSame.map((s) => s.syncMs));
    const sameIn = median(inSame.map((s) => s.ms));
    const sameRsync = median(rsyncSame);
    const rsyncCell = (x: number): string =>
      rsyncUnavailable ? 'rsync unavailable' : `rsync ${ms(x)}`;
    // Two ratios: the whole `octask run` (Node's start-up and the task
    // included) and its own sync figure (preparation to the agent's answer).
    const ahead = (cli: CliSync, rsync: number): string => {
      if (rsyncUnavailable) return 'ratio to rsync n/a';
      const wall = cli.wallMs / rsync;
      const sync = cli.syncMs / rsync;
      const mark = (r: number): string => (r <= 1 ? 'met' : 'MISSED');
      return `/rsync: wall ${wall.toFixed(2)} (${mark(wall)}), sync.ms ${sync.toFixed(2)} (${mark(sync)}); aim <= 1.0`;
    };
    const cliCell = (wall: number, syncMs: number): string =>
      `CLI ${ms(wall)}, sync.ms ${num(syncMs, 0)}`;
    const rows: string[][] = [
      [
        `${title}: first (median of ${FIRST_ROUNDS})`,
        cliCell(cliFirst.wallMs, cliFirst.syncMs),
        rsyncCell(rsyncFirst),
        ahead(cliFirst, rsyncFirst),
      ],
      [
        `  first: CPU used, user + system (median): CLI + agent`,
        `${num(firstCpu.cli, 0)} + ${num(firstCpu.agent, 0)} = ${ms(firstCpu.octask)}`,
        rsyncUnavailable
          ? 'rsync unavailable'
          : `rsync client + daemon ${num(firstCpu.rsyncClient, 0)} + ${num(firstCpu.rsyncDaemon, 0)} = ${ms(firstCpu.rsync)}`,
        Number.isFinite(firstCpu.octask / firstCpu.rsync)
          ? `ratio ${(firstCpu.octask / firstCpu.rsync).toFixed(2)}; on ${availableParallelism()} cores the wall time is at least CPU / ${availableParallelism()}`
          : 'n/a (no /proc)',
      ],
      [
        `  first: Node floor, median (git ls-files; read, SHA-256, same TLS, check, write each file once)`,
        `${ms(floorFirst.wallMs)}; CPU ${num(floorFirst.senderCpu, 0)} + ${num(floorFirst.receiverCpu, 0)} = ${ms(floorFirst.cpu)}`,
        rsyncCell(rsyncFirst),
        [
          rsyncUnavailable
            ? ''
            : `/rsync: wall ${ratioOf(floorFirst.wallMs, rsyncFirst)}, CPU ${ratioOf(floorFirst.cpu, firstCpu.rsync)}; `,
          `CLI / floor: wall ${ratioOf(cliFirst.wallMs, floorFirst.wallMs)}, CPU ${ratioOf(firstCpu.octask, floorFirst.cpu)}`,
        ].join(''),
      ],
      [
        `  no change (median of ${options.repeat})`,
        cliCell(sameWall, sameSyncMs),
        rsyncCell(sameRsync),
        ahead({ ...cliSame[0]!, wallMs: sameWall, syncMs: sameSyncMs }, sameRsync),
      ],
      [
        `  one file changed (median of ${options.repeat})`,
        cliCell(cliOne.wallMs, cliOne.syncMs),
        rsyncCell(rsyncOne),
        ahead(cliOne, rsyncOne),
      ],
      [
        `  no change, CLI without its watcher (OCTASK_NO_WATCHER=1)`,
        cliCell(
          median(cliSameAlone.map((s) => s.wallMs)),
          median(cliSameAlone.map((s) => s.syncMs)),
        ),
        rsyncCell(sameRsync),
        ahead(
          {
            ...cliSameAlone[0]!,
            wallMs: median(cliSameAlone.map((s) => s.wallMs)),
            syncMs: median(cliSameAlone.map((s) => s.syncMs)),
          },
          sameRsync,
        ),
      ],
      [
        `  one file changed, CLI without its watcher (median of ${options.repeat})`,
        cliCell(cliOneAlone.wallMs, cliOneAlone.syncMs),
        rsyncCell(rsyncOne),
        ahead(cliOneAlone, rsyncOne),
      ],
      [
        `  sent by the CLI (files, bytes): first / no change / one file`,
        `${cliFirst.filesSent}, ${bytesText(cliFirst.bytesSent)} / ${cliSame[0]!.filesSent}, ${bytesText(cliSame[0]!.bytesSent)} / ${cliOne.filesSent}, ${bytesText(cliOne.bytesSent)}`,
        `issue: ${RSYNC_SSH_REFERENCE} (ssh)`,
        '',
      ],
      [
        `  in-process (prepare to 'sync' event): first / no change / one file`,
        `${num(inFirst.ms, 0)} / ${num(sameIn, 0)} / ${num(inOne.ms, 0)} ms`,
        '',
        '',
      ],
      [
        `  agent's copy on disk after the first sync`,
        `${bytesText(copyOnDisk)} for ${bytesText(ws.bytes)} of files`,
        '',
        'each file written once',
      ],
      [
        `  CLI --no-sync, same agent and command (median of ${options.repeat})`,
        ms(median(cliNoSync)),
        '',
        '',
      ],
      [
        `  agent layout or check (its log's ms): first / no change / one file`,
        `${num(cliFirst.layoutMs, 0)} / ${num(median(cliSame.map((s) => s.layoutMs)), 0)} / ${num(cliOne.layoutMs, 0)} ms`,
        '',
        '',
      ],
    ];
    const step = (name: string): number => median(steps.map((s) => s[name] ?? NaN));
    const prepareSame = median(inSame.map((s) => s.prepareMs));
    const layoutSame = median(inSame.map((s) => s.layoutMs));
    const dispatcherSteps =
      step('gitList') +
      step('cacheLoad') +
      step('statAndHash') +
      step('cacheSave') +
      step('digest');
    rows.push(
      [`  where the in-process no-change ${num(sameIn, 0)} ms goes:`, '', '', ''],
      [`    dispatcher: prepareCliWorkspace (manifest)`, ms(prepareSame), '', ''],
      [
        `      git ls-files / hash cache load / lstat+cache / cache save / digest`,
        `${num(step('gitList'), 0)} / ${num(step('cacheLoad'), 0)} / ${num(step('statAndHash'), 0)} / ${num(step('cacheSave'), 0)} / ${num(step('digest'), 0)} ms`,
        `sum ${ms(dispatcherSteps)}`,
        '',
      ],
      [
        `    agent: check (digest, then a stat of each file a task may have changed)`,
        ms(layoutSame),
        '',
        '',
      ],
      [
        `    rest: syncCheck out, syncDone back, the task's start`,
        ms(sameIn - prepareSame - layoutSame),
        '',
        '',
      ],
      [
        `    a manifest when one is sent: msgpack encode + decode/validate (${bytesText(step('frameBytes'))})`,
        `${num(step('encode'), 0)} + ${num(step('decode'), 0)} ms`,
        '',
        '',
      ],
      [
        `    connection set-up (TLS-PSK, hello), paid by each CLI run`,
        ms(median(inSame.map((s) => s.connectMs))),
        '',
        '',
      ],
      [
        `  long-lived dispatcher: prepare / to the 'sync' event, no change`,
        `${num(longLived.noChange, 1)} / ${num(longLived.noChangeSync, 1)} ms`,
        '',
        `prepare < ${NO_CHANGE_AIM_MS} ms (${longLived.noChange < NO_CHANGE_AIM_MS ? 'met' : 'MISSED'})`,
      ],
      [
        `  long-lived dispatcher: prepare / to the 'sync' event, one file changed`,
        `${num(longLived.oneFile, 1)} / ${num(longLived.oneFileSync, 1)} ms`,
        '',
        `prepare < ${ONE_FILE_AIM_MS} ms (${longLived.oneFile < ONE_FILE_AIM_MS ? 'met' : 'MISSED'})`,
      ],
    );
    notes.push(
      `  sync: ${ws.files} files over ${ws.folders} folders, ${num(ws.bytes / MB, 1)} MB, in a git repository (set-up ${num(setupMs / 1000, 1)} s, git add+commit ${num(ws.gitMs / 1000, 1)} s, not timed);`,
      `        files older than the hash cache's ${RACY_WINDOW_MS / 1000} s racy window; disk flushed before each first sync; a fresh agent, $XDG_CACHE_HOME and dispatcher per method;`,
      `        CLI = \`node dist/octask.js run --agent ... --json -- true\` from the repository, wall time of the process;`,
      `        first syncs without the CLI's watcher; later runs ask the watcher an untimed run started (as on a user's Linux), or not (OCTASK_NO_WATCHER=1);`,
      `        rsync = \`rsync -a --delete --exclude .git SRC/ rsync://127.0.0.1:PORT/mod/\` to a local daemon${rsyncUnavailable ? ` (unavailable: ${rsyncUnavailable})` : ''}`,
      `        agents' copies and rsync's destinations in ${options.syncDir ?? `${tmpdir()} (the workspace's disk)`}`,
    );
    const figures: Record<string, number> = {
      syncFiles: ws.files,
      syncAgentDiskBytes: copyOnDisk,
      syncMB: ws.bytes / MB,
      syncCliFirstWallMs: cliFirst.wallMs,
      syncCliFirstMs: cliFirst.syncMs,
      syncCliFirstCpuMs: firstCpu.cli,
      syncAgentFirstCpuMs: firstCpu.agent,
      syncFloorFirstWallMs: floorFirst.wallMs,
      syncFloorFirstCpuMs: floorFirst.cpu,
      syncCliNoChangeWallMs: sameWall,
      syncCliNoChangeMs: sameSyncMs,
      syncCliOneFileWallMs: cliOne.wallMs,
      syncCliOneFileMs: cliOne.syncMs,
      syncCliNoSyncWallMs: median(cliNoSync),
      syncInProcessFirstMs: inFirst.ms,
      syncInProcessNoChangeMs: sameIn,
      syncInProcessOneFileMs: inOne.ms,
      syncNoChangePrepareMs: prepareSame,
      syncNoChangeAgentLayoutMs: layoutSame,
      syncConnectMs: median(inSame.map((s) => s.connectMs)),
      syncLongLivedNoChangePrepareMs: longLived.noChange,
      syncLongLivedNoChangeSyncMs: longLived.noChangeSync,
      syncLongLivedOneFilePrepareMs: longLived.oneFile,
      syncLongLivedOneFileSyncMs: longLived.oneFileSync,
    };
    if (!rsyncUnavailable)
      Object.assign(figures, {
        rsyncFirstMs: rsyncFirst,
        rsyncFirstCpuMs: firstCpu.rsync,
        rsyncNoChangeMs: sameRsync,
        rsyncOneFileMs: rsyncOne,
      });
    return { rows, notes, figures };
  } finally {
    await stopWatcherIn(join(dir, 'cache-cli'));
    await rsyncd?.stop();
    for (const a of agents) await a.stop();
    removeTree(dir);
    removeTree(out.dir);
  }
}

/**
 * Where rsync and the agents write: with --sync-dir a folder of its own
 * there, agents' workdirs included; else the bench's folder, and each agent
 * its own temporary workdir (startAgent's).
 */
interface WritePlace {
  dir: string;
  agent(name: string): { workdir?: string };
}

function writePlace(options: SyncBenchOptions, dir: string): WritePlace {
  if (!options.syncDir) return { dir, agent: () => ({}) };
  mkdirSync(options.syncDir, { recursive: true });
  const own = mkdtempSync(join(options.syncDir, 'octask-syncbench-'));
  return { dir: own, agent: (name) => ({ workdir: join(own, `agent-${name}`) }) };
}

function watcherEnv(cacheHome: string): NodeJS.ProcessEnv {
  return { ...process.env, XDG_CACHE_HOME: cacheHome };
}

/** Waits (up to 10 s) until the CLI's watcher for `cacheHome` answers, so timed runs ask it. */
async function untilWatcherListens(cacheHome: string): Promise<void> {
  for (let waited = 0; waited < 10_000; waited += 20) {
    if (await stopWatcher(watcherEnv(cacheHome), { probeOnly: true })) return;
    await sleep(20);
  }
  throw new Error(`the CLI started no watcher for ${cacheHome}`);
}

/** Stops the CLI's watcher for `cacheHome` and waits (up to 5 s) until it no longer answers. */
async function stopWatcherIn(cacheHome: string): Promise<void> {
  const env = watcherEnv(cacheHome);
  await stopWatcher(env).catch(() => false);
  for (let waited = 0; waited < 5000; waited += 50) {
    if (!(await stopWatcher(env, { probeOnly: true }))) break;
    await sleep(50);
  }
}

/** Removes a bench folder; a git or watcher process that was still writing in it gets a moment. */
function removeTree(path: string): void {
  rmSync(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
}

/** Bytes under `path` on disk (`du -sb`), or NaN when du fails. */
function diskBytes(path: string): number {
  const r = spawnSync('du', ['-sb', path], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.split(/\s/)[0]) : NaN;
}

/**
 * The large case: the CLI against rsync only (first, no change, one file),
 * on a workspace several times the main one, and what the agent's copy
 * takes on disk.
 */
export async function largeSyncBench(options: SyncBenchOptions): Promise<SyncBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'octask-syncbench-large-'));
  const out = writePlace(options, dir);
  let agent: StartedAgent | undefined;
  let rsyncd: RsyncDaemon | undefined;
  try {
    const setupStarted = performance.now();
    const ws = makeWorkspace(dir, options.files, options.bytes, options.folders);
    const keyFile = join(dir, 'key');
    writeNewKey(keyFile);
    agent = await startAgent({
      keyFile,
      name: 'sync-large',
      maxJobs: 2,
      nodeArgs: options.agentNodeArgs,
      ...out.agent('sync-large'),
    });
    const cache = join(dir, 'cache');
    const { unavailable: rsyncUnavailable, daemon } = await rsyncFor(dir, out);
    rsyncd = daemon;
    await sleep(Math.max(0, ws.writtenAt + RACY_WINDOW_MS + 100 - Date.now()));
    const setupMs = performance.now() - setupStarted;
    // Two rounds, rsync first and then the CLI, then the other way round,
    // each to a fresh destination, and the means shown: creating 40,000
    // files on this disk may take three times as long in one minute as in
    // the next (../shared/notes), and the later method of a round pays for
    // what the earlier one left to the disk.
    flushDisk();
    const rsyncA = rsyncd ? await timeRsync(ws.root, rsyncd.url) : NaN;
    flushDisk();
    const firstA = await cliRun(ws, agent, keyFile, cache, true);
    const onDisk = diskBytes(join(agent.workdir, 'workspaces'));
    const second = await startAgent({
      keyFile,
      name: 'sync-large-2',
      maxJobs: 2,
      nodeArgs: options.agentNodeArgs,
      ...out.agent('sync-large-2'),
    });
    let firstB: CliSync;
    try {
      flushDisk();
      firstB = await cliRun(ws, second, keyFile, join(dir, 'cache-2'), true);
    } finally {
      await second.stop();
    }
    flushDisk();
    const rsyncB = rsyncd
      ? await timeRsync(ws.root, `${rsyncd.url.replace(/\/mod\/$/, '/first/')}large/`)
      : NaN;
    const rsyncFirst = (rsyncA + rsyncB) / 2;
    const first: CliSync = { ...firstA, wallMs: (firstA.wallMs + firstB.wallMs) / 2 };
    if (firstB.filesSent !== ws.files)
      throw new Error(`the second large first sync sent ${firstB.filesSent} files`);
    // As in the main case: one untimed run starts the watcher the next ones ask.
    await cliRun(ws, agent, keyFile, cache, true, true);
    await untilWatcherListens(cache);
    const same: CliSync[] = [];
    for (let i = 0; i < options.repeat; i++)
      same.push(await cliRun(ws, agent, keyFile, cache, true, true));
    const rsyncSame: number[] = [];
    if (rsyncd)
      for (let i = 0; i < options.repeat; i++) rsyncSame.push(await timeRsync(ws.root, rsyncd.url));
    const ones: CliSync[] = [];
    const rsyncOnes: number[] = [];
    for (let i = 0; i < options.repeat; i++) {
      appendFileSync(join(ws.root, ws.changed), `changed at ${new Date().toISOString()}\n`);
      ones.push(await cliRun(ws, agent, keyFile, cache, true, true));
      if (rsyncd) rsyncOnes.push(await timeRsync(ws.root, rsyncd.url));
    }
    const one = medianSync(ones);
    const rsyncOne = rsyncd ? median(rsyncOnes) : NaN;
    if (
      first.filesSent !== ws.files ||
      same.some((x) => x.filesSent !== 0) ||
      ones.some((x) => x.filesSent !== 1)
    )
      throw new Error(
        `the large case sent ${first.filesSent} / ${same.map((x) => x.filesSent).join(',')} / ${ones.map((x) => x.filesSent).join(',')} files`,
      );
    const sameWall = median(same.map((x) => x.wallMs));
    const rsyncCell = (x: number): string =>
      rsyncUnavailable ? 'rsync unavailable' : `rsync ${ms(x)}`;
    const ratio = (a: number, b: number): string =>
      rsyncUnavailable ? 'ratio n/a' : `ratio ${(a / b).toFixed(2)} (aim <= 1.0)`;
    const title = `sync ${ws.files.toLocaleString('en-US')} files / ${num(ws.bytes / MB, 1)} MB: first (mean of 2, in turn)`;
    const rows: string[][] = [
      [title, `CLI ${ms(first.wallMs)}`, rsyncCell(rsyncFirst), ratio(first.wallMs, rsyncFirst)],
      [
        `  each round: rsync then CLI / CLI then rsync`,
        `CLI ${ms(firstA.wallMs)} / ${ms(firstB.wallMs)}`,
        rsyncUnavailable ? '' : `rsync ${ms(rsyncA)} / ${ms(rsyncB)}`,
        '',
      ],
      [
        `  no change (median of ${options.repeat})`,
        `CLI ${ms(sameWall)}`,
        rsyncCell(median(rsyncSame)),
        ratio(sameWall, median(rsyncSame)),
      ],
      [
        `  one file changed (median of ${options.repeat})`,
        `CLI ${ms(one.wallMs)}`,
        rsyncCell(rsyncOne),
        ratio(one.wallMs, rsyncOne),
      ],
      [
        `  agent's copy on disk after the first sync`,
        `${bytesText(onDisk)} for ${bytesText(ws.bytes)} of files`,
        '',
        'each file written once',
      ],
    ];
    return {
      rows,
      notes: [
        `  large sync: ${ws.files} files over ${ws.folders} folders, ${num(ws.bytes / MB, 1)} MB (set-up ${num(setupMs / 1000, 1)} s, not timed); CLI and rsync as above`,
      ],
      figures: {
        syncLargeFiles: ws.files,
        syncLargeCliFirstWallMs: first.wallMs,
        syncLargeCliNoChangeWallMs: sameWall,
        syncLargeCliOneFileWallMs: one.wallMs,
        syncLargeAgentDiskBytes: onDisk,
        ...(rsyncUnavailable
          ? {}
          : {
              rsyncLargeFirstMs: rsyncFirst,
              rsyncLargeNoChangeMs: median(rsyncSame),
              rsyncLargeOneFileMs: rsyncOne,
            }),
      },
    };
  } finally {
    await stopWatcherIn(join(dir, 'cache'));
    await rsyncd?.stop();
    await agent?.stop();
    removeTree(dir);
    removeTree(out.dir);
  }
}
