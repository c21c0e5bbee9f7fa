/**
 * Octask benchmark: one loopback agent (2 slots, TLS-PSK on) driven by an
 * in-process Dispatcher, each figure printed next to a local baseline and
 * the aim. Prints figures only: it asserts nothing about them. Exits 0 when
 * every measurement ran, non-zero with a message when one could not.
 *
 * Order: task warm-up, the batch, unloaded latency, local baselines, then the
 * stream (with its own warm-up), then the batch once more: streaming grows
 * the agent's resident memory and every later spawn (a fork) pays for it.
 * Last, workspace sync next to rsync (bench/syncBench.ts), with agents of its own.
 *
 *   node esbuild.mjs && node dist/bench.js [options]
 *
 * Options:
 *   --tasks N            tasks in the all-at-once batch (1000)
 *   --unloaded N         tasks in the closed-loop latency run (200)
 *   --submitters N       closed-loop submitters (2)
 *   --bytes N            bytes streamed by one task (268435456)
 *   --only LIST          comma list of: batch,shared,unloaded,local,stream,sync
 *   --sync-files N       files in the sync section's generated workspace (10000)
 *   --sync-mb N          its total size in MB (20)
 *   --sync-large N       files in the large sync case, 2 MB per 1,000 files (40000)
 *   --sync-dir DIR       put the agents' copies and rsync's destinations in DIR (a tmpfs,
 *                        say, to measure the software without the disk); default: $TMPDIR
 *   --agent-cpu-prof DIR write a V8 CPU profile of the agent into DIR
 *   --agent-node-arg A   extra flag for the agent's node (repeatable)
 *   --json               also print the figures as one JSON line at the end
 * (Profile the dispatcher side with `node --cpu-prof dist/bench.js`.)
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { arch, cpus, loadavg, platform, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeNewKey } from '../agent/keyFile';
import { Dispatcher } from '../extension/dispatcher/dispatcher';
import { FINAL_STATUSES } from '../shared/protocol';
import type { TaskInfo } from '../shared/rpc';
import type { StartedAgent } from '../test/helpers/agentProcess';
import { startAgent } from '../test/helpers/agentProcess';
import { dispatcherHello, rawDial } from '../test/helpers/rawPeer';
import { MB, mean, num, percentile } from './stats';
import type { SyncBenchResult } from './syncBench';
import { largeSyncBench, syncBench } from './syncBench';

const SLOTS = 2;
const SECTIONS = ['batch', 'shared', 'unloaded', 'local', 'stream', 'sync'] as const;
type Section = (typeof SECTIONS)[number];

interface BenchOptions {
  tasks: number;
  unloaded: number;
  submitters: number;
  bytes: number;
  syncFiles: number;
  syncMB: number;
  syncLargeFiles: number;
  /** Where the sync section's agents and rsync write (default: the temporary folder). */
  syncDir?: string;
  only: Set<Section>;
  agentNodeArgs: string[];
  json: boolean;
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      tasks: { type: 'string' },
      unloaded: { type: 'string' },
      submitters: { type: 'string' },
      bytes: { type: 'string' },
      'sync-files': { type: 'string' },
      'sync-mb': { type: 'string' },
      'sync-large': { type: 'string' },
      'sync-dir': { type: 'string' },
      only: { type: 'string' },
      'agent-cpu-prof': { type: 'string' },
      'agent-node-arg': { type: 'string', multiple: true },
      json: { type: 'boolean' },
    },
  });
  const int = (name: string, text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`--${name} must be a whole number >= 1, got ${JSON.stringify(text)}`);
    return n;
  };
  const only = new Set<Section>();
  for (const s of (values.only ?? SECTIONS.join(','))
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    if (!(SECTIONS as readonly string[]).includes(s))
      throw new Error(`--only takes ${SECTIONS.join(',')}; got ${JSON.stringify(s)}`);
    only.add(s as Section);
  }
  const agentNodeArgs = [...(values['agent-node-arg'] ?? [])];
  if (values['agent-cpu-prof']) {
    const dir = resolve(values['agent-cpu-prof']);
    mkdirSync(dir, { recursive: true });
    agentNodeArgs.push('--cpu-prof', '--cpu-prof-dir', dir);
  }
  return {
    tasks: int('tasks', values.tasks, 1000),
    unloaded: int('unloaded', values.unloaded, 200),
    submitters: int('submitters', values.submitters, 2),
    bytes: int('bytes', values.bytes, 268_435_456),
    syncFiles: int('sync-files', values['sync-files'], 10_000),
    syncMB: int('sync-mb', values['sync-mb'], 20),
    syncLargeFiles: int('sync-large', values['sync-large'], 40_000),
    ...(values['sync-dir'] ? { syncDir: resolve(values['sync-dir']) } : {}),
    only,
    agentNodeArgs,
    json: values.json ?? false,
  };
}

interface TaskTiming {
  info: TaskInfo;
  submittedAt: number;
  endedAt: number;
}

/** Submits tasks and resolves each one's promise on its final 'task' event. */
class TaskRunner {
  private readonly waiting = new Map<string, (info: TaskInfo, at: number) => void>();

  constructor(private readonly dispatcher: Dispatcher) {
    dispatcher.on('task', (info) => {
      if (!FINAL_STATUSES.has(info.status)) return;
      const done = this.waiting.get(info.id);
      if (!done) return;
      this.waiting.delete(info.id);
      done({ ...info }, performance.now());
    });
  }

  run(command: string): Promise<TaskTiming> {
    return this.start(command).done;
  }

  /** Submits now; `id` is known at once, `done` resolves when the task is over. */
  start(command: string): { id: string; done: Promise<TaskTiming> } {
    const submittedAt = performance.now();
    const [info] = this.dispatcher.submit({ command, lostRetries: 0 });
    if (!info) throw new Error('submit made no task');
    const id = info.id;
    // Ended already inside submit (e.g. the agent could not be sent to)?
    const record = this.dispatcher.tasks.get(id);
    if (record?.phase.phase === 'final')
      return {
        id,
        done: Promise.resolve({
          info: { ...record.info },
          submittedAt,
          endedAt: performance.now(),
        }),
      };
    return {
      id,
      done: new Promise((res) =>
        this.waiting.set(id, (final, endedAt) => res({ info: final, submittedAt, endedAt })),
      ),
    };
  }
}

function mustComplete(what: string, timings: readonly TaskTiming[]): void {
  const bad = timings.filter((t) => t.info.status !== 'completed');
  if (bad.length === 0) return;
  const first = bad[0]!.info;
  throw new Error(
    `${what}: ${bad.length} of ${timings.length} tasks did not complete (first: ${first.id} ${first.status}, exit ${first.exitCode}, ${first.error?.message ?? 'no error message'})`,
  );
}

/** N tasks submitted in one go; the clock runs until the last one ends. */
async function batch(
  runner: TaskRunner,
  n: number,
): Promise<{ tasksPerSec: number; latencies: number[]; wallMs: number }> {
  const start = performance.now();
  const pending: Array<Promise<TaskTiming>> = [];
  for (let i = 0; i < n; i++) pending.push(runner.run('true'));
  const timings = await Promise.all(pending);
  const wallMs = performance.now() - start;
  mustComplete('batch', timings);
  return {
    tasksPerSec: n / (wallMs / 1000),
    latencies: timings.map((t) => t.endedAt - t.submittedAt),
    wallMs,
  };
}

/**
 * Two dispatchers (two ids, as two editor windows) each submit `n` tasks to
 * the same agent at once. A third connection only listens to the agent's
 * load reports: the agent's own running count, never more than its slots.
 */
async function twoDispatchers(
  key: ReturnType<typeof writeNewKey>,
  agent: StartedAgent,
  n: number,
): Promise<{ tasksPerSec: number; peakRunning: number }> {
  const watch = await rawDial(agent.port, key);
  watch.send(dispatcherHello({ name: 'bench-observer' }));
  await watch.next();
  const pair = [0, 1].map(() => new Dispatcher({ key, agents: [agent.address], mdns: false }));
  try {
    for (const d of pair) d.start();
    await Promise.all(pair.map((d) => d.settled()));
    const runners = pair.map((d) => new TaskRunner(d));
    const start = performance.now();
    const timings = await Promise.all(
      runners.flatMap((r) => Array.from({ length: n }, () => r.run('true'))),
    );
    const wallMs = performance.now() - start;
    mustComplete('two dispatchers', timings);
    return {
      tasksPerSec: timings.length / (wallMs / 1000),
      peakRunning: Math.max(0, ...watch.loads.map((l) => l.running)),
    };
  } finally {
    for (const d of pair) d.close();
    watch.ws.close();
  }
}

/** `submitters` loops, each submitting its next task when the previous one ends: no task waits for a slot. */
async function closedLoop(
  runner: TaskRunner,
  n: number,
  submitters: number,
): Promise<{ latencies: number[]; agentMs: number[]; tasksPerSec: number }> {
  const timings: TaskTiming[] = [];
  let left = n;
  const start = performance.now();
  const loop = async (): Promise<void> => {
    while (left > 0) {
      left--;
      timings.push(await runner.run('true'));
    }
  };
  await Promise.all(Array.from({ length: submitters }, loop));
  const wallMs = performance.now() - start;
  mustComplete('closed loop', timings);
  return {
    latencies: timings.map((t) => t.endedAt - t.submittedAt),
    agentMs: timings.map((t) => t.info.durationMs ?? NaN),
    tasksPerSec: n / (wallMs / 1000),
  };
}

/** One task streaming `bytes` of stdout; counts what the dispatcher's 'output' events carry. */
async function streamThroughAgent(
  dispatcher: Dispatcher,
  runner: TaskRunner,
  bytes: number,
): Promise<{ mbPerSec: number; ms: number }> {
  let id: string | undefined;
  let received = 0;
  const off = dispatcher.on('output', (chunk) => {
    if (chunk.task === id) received += chunk.data.byteLength;
  });
  try {
    // Output needs the network, so none can arrive before start() returns the id.
    const task = runner.start(`head -c ${bytes} /dev/zero`);
    id = task.id;
    const timing = await task.done;
    mustComplete('stream', [timing]);
    if (received !== bytes)
      throw new Error(
        `stream: the dispatcher received ${received} bytes of output, expected ${bytes}`,
      );
    const ms = timing.endedAt - timing.submittedAt;
    return { mbPerSec: bytes / MB / (ms / 1000), ms };
  } finally {
    off();
  }
}

/** The same command spawned from this Node process, stdout counted from its pipe. */
function streamLocalPipe(bytes: number): Promise<{ mbPerSec: number; ms: number }> {
  return new Promise((res, rej) => {
    const start = performance.now();
    const child = spawn('/bin/sh', ['-c', `head -c ${bytes} /dev/zero`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let received = 0;
    child.stdout.on('data', (d: Buffer) => (received += d.byteLength));
    child.once('error', rej);
    child.once('close', (code) => {
      const ms = performance.now() - start;
      if (code !== 0) return rej(new Error(`local pipe: head exited with ${code}`));
      if (received !== bytes)
        return rej(new Error(`local pipe: received ${received} bytes, expected ${bytes}`));
      res({ mbPerSec: bytes / MB / (ms / 1000), ms });
    });
  });
}

/** A shell line run to completion locally; resolves with its wall time in ms. */
function timeShell(line: string): Promise<number> {
  return new Promise((res, rej) => {
    const start = performance.now();
    const child = spawn('/bin/sh', ['-c', line], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', rej);
    child.once('close', (code) =>
      code === 0 ? res(performance.now() - start) : rej(new Error(`"${line}" exited with ${code}`)),
    );
  });
}

/** `sh -c true` spawned from Node, `parallel` at a time: the floor for anything Node-based that spawns. */
async function nodeSpawnLoop(n: number, parallel: number): Promise<number> {
  let left = n;
  const start = performance.now();
  const one = (): Promise<void> =>
    new Promise((res, rej) => {
      const child = spawn('/bin/sh', ['-c', 'true'], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.once('error', rej);
      child.once('close', (code) =>
        code === 0 ? res() : rej(new Error(`sh -c true exited with ${code}`)),
      );
    });
  const loop = async (): Promise<void> => {
    while (left > 0) {
      left--;
      await one();
    }
  };
  await Promise.all(Array.from({ length: parallel }, loop));
  return n / ((performance.now() - start) / 1000);
}

/** A process's resident memory in MB (Linux /proc); NaN where unknown. */
function residentMB(pid: number | undefined): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    return kb === undefined ? NaN : Number(kb) / 1024;
  } catch {
    return NaN;
  }
}

// ---- printing ----

const rows: string[][] = [];
function row(...cells: string[]): void {
  rows.push(cells);
}
function printRows(): void {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  for (const r of rows) {
    const line = r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('   ');
    console.log(line.trimEnd());
  }
  rows.length = 0;
}
const aim = (met: boolean, text: string): string => `${text} ${met ? '(met)' : '(MISSED)'}`;

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const cpuList = cpus();
  console.log('Octask bench');
  console.log(
    `  node ${process.version}, ${platform()} ${arch()}, ${cpuList.length} cores (${cpuList[0]?.model.trim() ?? 'unknown'}), load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `  one loopback octask-agent, --max-jobs ${SLOTS}, TLS-PSK on; in-process Dispatcher`,
  );
  if (options.agentNodeArgs.length > 0)
    console.log(`  agent node flags: ${options.agentNodeArgs.join(' ')}`);
  console.log('');

  const dir = mkdtempSync(join(tmpdir(), 'octask-bench-'));
  let agent: StartedAgent | undefined;
  let dispatcher: Dispatcher | undefined;
  try {
    const keyFile = join(dir, 'key');
    const key = writeNewKey(keyFile);
    agent = await startAgent({
      keyFile,
      name: 'bench',
      maxJobs: SLOTS,
      nodeArgs: options.agentNodeArgs,
    });
    const agentExit = agent.exited.then((code) => {
      throw new Error(
        `octask-agent exited (code ${code}) during the run: ${JSON.stringify(agent?.logs.slice(-5))}`,
      );
    });
    agentExit.catch(() => undefined);

    dispatcher = new Dispatcher({ key, agents: [agent.address], mdns: false });
    dispatcher.start();
    await dispatcher.settled();
    const info = dispatcher.agents()[0];
    if (!info || (info.status !== 'online' && info.status !== 'busy')) {
      throw new Error(
        `the dispatcher could not connect to the agent at ${agent.address}: ${info?.lastError?.message ?? info?.status ?? 'no agent'}`,
      );
    }
    const runner = new TaskRunner(dispatcher);
    const d = dispatcher;
    // Any measurement fails at once if the agent dies under it.
    const race = <T>(p: Promise<T>): Promise<T> => Promise.race([p, agentExit]);

    // Warm-up: JIT, TLS session, the shell in the page cache. Tasks only:
    // streaming grows the agent's memory, which slows every later spawn
    // (fork), so the stream runs after the task figures and the batch is
    // measured again after it.
    await race(closedLoop(runner, 40, SLOTS));
    await race(batch(runner, 40));
    await nodeSpawnLoop(20, SLOTS);
    const rssBefore = residentMB(agent.proc.pid);

    const figures: Record<string, number> = {};
    const n = options.tasks;
    row('measure', 'octask', 'local', 'aim');
    row('-------', '------', '-----', '---');
    if (options.only.has('batch') || options.only.has('local')) {
      const b = options.only.has('batch') ? await race(batch(runner, n)) : undefined;
      const xargsMs = options.only.has('local')
        ? await timeShell(`seq ${n} | xargs -P${SLOTS} -I{} sh -c true`)
        : NaN;
      const nodeRate = options.only.has('local') ? await nodeSpawnLoop(n, SLOTS) : NaN;
      row(
        `${n} x "true" submitted at once, tasks/s`,
        num(b?.tasksPerSec ?? NaN, 0),
        `${num(n / (xargsMs / 1000), 0)} (xargs -P${SLOTS} sh -c)`,
        b ? aim(b.tasksPerSec >= 640, '>= 640') : '>= 640',
      );
      row('', '', `${num(nodeRate, 0)} (node spawn, ${SLOTS} at a time)`, '');
      if (options.only.has('local'))
        Object.assign(figures, {
          xargsTasksPerSec: n / (xargsMs / 1000),
          nodeSpawnTasksPerSec: nodeRate,
        });
      if (b) {
        row(
          `  (a) latency within that batch, incl. queueing: p50`,
          `${num(percentile(b.latencies, 50), 1)} ms`,
          '',
          '',
        );
        row(
          `                                                 p99`,
          `${num(percentile(b.latencies, 99), 1)} ms`,
          '',
          '',
        );
        row(`      batch wall time`, `${num(b.wallMs, 0)} ms`, `${num(xargsMs, 0)} ms`, '');
        Object.assign(figures, {
          batchTasksPerSec: b.tasksPerSec,
          batchP50Ms: percentile(b.latencies, 50),
          batchP99Ms: percentile(b.latencies, 99),
        });
      }
    }
    if (options.only.has('shared')) {
      const shared = await race(twoDispatchers(key, agent, 500));
      const xargsMs = await timeShell(`seq 1000 | xargs -P${SLOTS} -I{} sh -c true`);
      row(
        `2 dispatchers x 500 "true" at once on one agent, tasks/s`,
        num(shared.tasksPerSec, 0),
        `${num(1000 / (xargsMs / 1000), 0)} (xargs -P${SLOTS}, 1000)`,
        '',
      );
      row(
        `  the agent's peak running count (its own reports)`,
        String(shared.peakRunning),
        '',
        aim(shared.peakRunning <= SLOTS, `<= ${SLOTS}`),
      );
      Object.assign(figures, {
        sharedTasksPerSec: shared.tasksPerSec,
        sharedPeakRunning: shared.peakRunning,
      });
    }
    if (options.only.has('unloaded')) {
      const u = await race(closedLoop(runner, options.unloaded, options.submitters));
      const p50 = percentile(u.latencies, 50);
      row(
        `  (b) unloaded latency, ${options.unloaded} tasks, ${options.submitters} closed-loop submitters: p50`,
        `${num(p50, 2)} ms`,
        '~8 ms (ssh)',
        aim(p50 < 5, '< 5 ms'),
      );
      row(
        `                                                               p99`,
        `${num(percentile(u.latencies, 99), 2)} ms`,
        '',
        '',
      );
      row(
        `      of which the agent's spawn-to-exit (durationMs): p50 / mean`,
        `${num(percentile(u.agentMs, 50), 0)} / ${num(mean(u.agentMs), 2)} ms`,
        '',
        '',
      );
      row(`      closed-loop rate`, `${num(u.tasksPerSec, 0)} tasks/s`, '', '');
      Object.assign(figures, {
        unloadedP50Ms: p50,
        unloadedP99Ms: percentile(u.latencies, 99),
        unloadedAgentP50Ms: percentile(u.agentMs, 50),
        unloadedTasksPerSec: u.tasksPerSec,
      });
    }
    if (options.only.has('stream')) {
      await race(streamThroughAgent(d, runner, 16 * MB));
      await streamLocalPipe(16 * MB);
      const s = await race(streamThroughAgent(d, runner, options.bytes));
      const local = await streamLocalPipe(options.bytes);
      row(
        `${num(options.bytes / MB, 0)} MB from one task's stdout, MB/s`,
        num(s.mbPerSec, 0),
        `${num(local.mbPerSec, 0)} (node pipe)`,
        aim(s.mbPerSec >= 350, '>= 350'),
      );
      row(`  wall time (submit to result)`, `${num(s.ms, 0)} ms`, `${num(local.ms, 0)} ms`, '');
      Object.assign(figures, { streamMBPerSec: s.mbPerSec, localPipeMBPerSec: local.mbPerSec });
    }
    const rssAfter = residentMB(agent.proc.pid);
    if (options.only.has('stream') && options.only.has('batch')) {
      const again = await race(batch(runner, n));
      row(
        `${n} x "true" again, after the agent streamed, tasks/s`,
        num(again.tasksPerSec, 0),
        '',
        aim(again.tasksPerSec >= 640, '>= 640'),
      );
      figures.batchAfterStreamTasksPerSec = again.tasksPerSec;
    }
    if (options.only.has('stream')) {
      row(
        `agent resident memory (VmRSS) before / after streaming`,
        `${num(rssBefore, 0)} / ${num(rssAfter, 0)} MB`,
        '',
        '',
      );
    }
    Object.assign(figures, { agentRssBeforeMB: rssBefore, agentRssAfterMB: rssAfter });
    let sync: SyncBenchResult | undefined;
    if (options.only.has('sync')) {
      sync = await syncBench({
        files: options.syncFiles,
        bytes: options.syncMB * MB,
        folders: 100,
        repeat: 3,
        agentNodeArgs: options.agentNodeArgs,
        syncDir: options.syncDir,
      });
      for (const r of sync.rows) row(...r);
      Object.assign(figures, sync.figures);
      const large = await largeSyncBench({
        files: options.syncLargeFiles,
        bytes: Math.round((options.syncLargeFiles / 1000) * 2 * MB),
        folders: Math.max(1, Math.round(options.syncLargeFiles / 100)),
        repeat: 3,
        agentNodeArgs: options.agentNodeArgs,
        syncDir: options.syncDir,
      });
      for (const r of large.rows) row(...r);
      Object.assign(figures, large.figures);
      sync = { ...sync, notes: [...sync.notes, ...large.notes] };
    }
    printRows();
    console.log('');
    console.log(
      '  latencies: performance.now() from submit() to the final "task" event; MB = 2^20 bytes',
    );
    for (const line of sync?.notes ?? []) console.log(line);
    if (options.json) {
      const rounded = Object.fromEntries(
        Object.entries(figures).map(([k, v]) => [k, Math.round(v * 100) / 100]),
      );
      console.log(JSON.stringify({ node: process.version, cores: cpuList.length, ...rounded }));
    }
    return 0;
  } finally {
    dispatcher?.close();
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `bench: cannot run: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(1);
  },
);
