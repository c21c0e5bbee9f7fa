/**
 * Octask demo: starts two agents on this machine (loopback, TLS-PSK with a
 * fresh key), runs four small jobs through the real `octask run` CLI, and
 * prints a table of every task. Exits 0 when everything ended as expected,
 * 1 when something did not (so it doubles as a smoke test), 130 when
 * interrupted. Always stops the agents and removes its temporary folder.
 *
 *   npm run demo        (builds, then runs node dist/demo.js)
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeNewKey } from '../agent/keyFile';
import { DemoAgent, withoutOctaskVariables } from './demoAgent';
import type { TaskResult } from './runResult';
import { parseRunJson } from './runResult';
import { formatTable } from './table';

const AGENT_NAMES = ['desk', 'pi'] as const;
const MAX_JOBS = 2;
/** Time a CLI run gets after SIGTERM before SIGKILL, when interrupted. */
const CLI_KILL_AFTER_MS = 3_000;

// ---------------------------------------------------------------- output

const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
const paint =
  (code: string) =>
  (text: string): string =>
    color ? `\x1b[${code}m${text}\x1b[0m` : text;
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');
const cyan = paint('36');

/** Quotes a word for a POSIX shell when it needs it. */
function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function seconds(ms: number | null): string {
  return ms === null ? '-' : `${(ms / 1000).toFixed(2)} s`;
}

// ---------------------------------------------------------------- the jobs

interface Expectation {
  status: string;
  exitCode: number | null;
}

interface Job {
  /** Short name for the table. */
  name: string;
  /** What the job shows, one line. */
  heading: string;
  /** `octask run` flags before `--`. */
  flags: string[];
  /** The command line the agent's shell runs. */
  command: string;
  /** `octask run`'s own exit status. */
  cliExit: number;
  /** What every task of the job should end as. */
  expect: Expectation;
  /** Problems beyond each task's status, given the tasks and the output seen. */
  check(tasks: TaskResult[], output: string): string[];
}

const SHARDS = 4;
const ITEMS = 100;

const JOBS: Job[] = [
  {
    name: 'shards',
    heading: `One command split into ${SHARDS} shards, spread over both agents (${MAX_JOBS} slots each)`,
    flags: ['--shards', String(SHARDS)],
    command:
      'echo "shard $OCTASK_SHARD_INDEX of $OCTASK_SHARD_COUNT on $OCTASK_AGENT_NAME"; sleep 1; ' +
      `echo "shard $OCTASK_SHARD_INDEX counted $(seq $OCTASK_SHARD_INDEX $OCTASK_SHARD_COUNT ${ITEMS - 1} | wc -l) of ${ITEMS} items"`,
    cliExit: 0,
    expect: { status: 'completed', exitCode: 0 },
    check: (tasks, output) => {
      const problems = [
        ...countIs(tasks, SHARDS),
        ...sameSet(
          'shards',
          tasks.map((t) => String(t.shard)),
          Array.from({ length: SHARDS }, (_, i) => String(i)),
        ),
      ];
      // Each shard counts every SHARDS-th item from its index: together, all of them once.
      const counts = [...output.matchAll(/shard (\d+) counted\s+(\d+) of/g)];
      const total = counts.reduce((sum, m) => sum + Number(m[2]), 0);
      if (counts.length !== SHARDS || total !== ITEMS)
        problems.push(
          `the shards' counts should add up to ${ITEMS} over ${SHARDS} lines; saw ${counts.length} lines adding up to ${total}`,
        );
      return problems;
    },
  },
  {
    name: 'all',
    heading: 'The same command once on every agent (--target all)',
    flags: ['--target', 'all'],
    command: 'echo "$OCTASK_AGENT_NAME: $(uname -sm)"',
    cliExit: 0,
    expect: { status: 'completed', exitCode: 0 },
    check: (tasks) => [
      ...countIs(tasks, AGENT_NAMES.length),
      ...sameSet(
        'agents',
        tasks.map((t) => String(t.agent)),
        [...AGENT_NAMES],
      ),
    ],
  },
  {
    name: 'failing',
    heading: "A failing command: its stderr comes back, and its exit code 3 becomes octask's",
    flags: [],
    command: 'echo "building widget.c"; echo "widget.c:42: error: expected ;" >&2; exit 3',
    cliExit: 3,
    expect: { status: 'failed', exitCode: 3 },
    check: (tasks) => countIs(tasks, 1),
  },
  {
    name: 'timeout',
    heading: 'A command that runs too long: the agent ends it after --timeout seconds',
    flags: ['--timeout', '1'],
    command: 'sleep 30',
    cliExit: 124,
    expect: { status: 'timed_out', exitCode: null },
    check: (tasks) => countIs(tasks, 1),
  },
];

function countIs(tasks: TaskResult[], n: number): string[] {
  return tasks.length === n ? [] : [`expected ${n} task(s), got ${tasks.length}`];
}

function sameSet(what: string, got: string[], want: string[]): string[] {
  const a = [...got].sort().join(',');
  const b = [...want].sort().join(',');
  return a === b ? [] : [`expected ${what} ${b}, got ${a}`];
}

function taskProblem(task: TaskResult, expect: Expectation): string | null {
  if (task.status === expect.status && task.exitCode === expect.exitCode) return null;
  const error = task.error ? ` (${task.error.code}: ${task.error.message})` : '';
  return `task ${task.id} ended ${task.status} with exit code ${task.exitCode ?? '-'}${error}; expected ${expect.status}${expect.exitCode === null ? '' : ` with exit code ${expect.exitCode}`}`;
}

// ---------------------------------------------------------------- running the CLI

class Interrupted extends Error {}

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** The task output and messages, as also forwarded to our stderr. */
  stderr: string;
  ms: number;
}

/** Runs `node dist/octask.js run ARGS`, forwarding its stderr live and capturing its stdout. */
function runCli(bin: string, args: string[], abort: AbortSignal): Promise<CliRun> {
  const started = Date.now();
  const child: ChildProcess = spawn(process.execPath, [bin, 'run', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: withoutOctaskVariables(process.env),
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    process.stderr.write(d);
  });
  // Interrupted: the CLI cancels its remote tasks on SIGTERM.
  let killer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    child.kill('SIGTERM');
    killer = setTimeout(() => child.kill('SIGKILL'), CLI_KILL_AFTER_MS);
  };
  abort.addEventListener('abort', onAbort, { once: true });
  return new Promise((resolvePromise, reject) => {
    child.once('error', (err) => {
      abort.removeEventListener('abort', onAbort);
      reject(new Error(`could not start ${bin}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      abort.removeEventListener('abort', onAbort);
      clearTimeout(killer);
      resolvePromise({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** `promise`, or an Interrupted rejection as soon as `abort` fires. */
function unlessAborted<T>(promise: Promise<T>, abort: AbortSignal): Promise<T> {
  if (abort.aborted) return Promise.reject(new Interrupted());
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = (): void => reject(new Interrupted());
    abort.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        abort.removeEventListener('abort', onAbort);
        resolvePromise(v);
      },
      (err: unknown) => {
        abort.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

// ---------------------------------------------------------------- main

/** dist/NAME next to dist/demo.js; a clear message when it is not built. */
function builtProgram(name: string): string {
  const path = resolve(__dirname, name);
  if (!existsSync(path))
    throw new Error(`${path} is not built; run "npm run demo" (or "node esbuild.mjs") first`);
  return path;
}

interface JobResult {
  job: Job;
  tasks: TaskResult[];
}

async function demo(abort: AbortSignal, agents: DemoAgent[], dir: string): Promise<boolean> {
  const agentBin = builtProgram('octask-agent.js');
  const cliBin = builtProgram('octask.js');
  const keyFile = join(dir, 'key');
  const key = writeNewKey(keyFile);

  console.log(bold('Octask demo: two agents on this machine, four jobs through the octask CLI.'));
  console.log(
    dim(
      '(`octask-agent` and `octask` below are dist/octask-agent.js and dist/octask.js; the demo\n' +
        ' runs `octask run` with --json added, to collect the results for the summary.)',
    ),
  );
  console.log(`A fresh cluster key (id ${key.id}) is in ${keyFile}.`);
  console.log(`Starting ${AGENT_NAMES.length} agents, each as you would start one on a device:`);
  for (const name of AGENT_NAMES) {
    const workdir = join(dir, name);
    const options = { bin: agentBin, name, keyFile, workdir, maxJobs: MAX_JOBS };
    // prettier-ignore
    const shown = ['octask-agent', '--name', name, '--bind', '127.0.0.1', '--port', '0', '--no-mdns',
      '--key-file', keyFile, '--workdir', workdir, '--max-jobs', String(MAX_JOBS)];
    console.log(cyan(`  $ ${shown.map(shellQuote).join(' ')}`));
    agents.push(new DemoAgent(options));
  }
  const ports = await unlessAborted(Promise.all(agents.map((a) => a.ready)), abort);
  const addresses = ports.map((p) => `127.0.0.1:${p}`);
  agents.forEach((a, i) =>
    console.log(`  ${a.name} listens on ${addresses[i]} (--port 0 took a free port; TLS-PSK on)`),
  );

  const base = [...addresses.flatMap((a) => ['--agent', a]), '--key-file', keyFile, '--no-mdns'];
  const results: JobResult[] = [];
  const problems: string[] = [];
  for (const [i, job] of JOBS.entries()) {
    console.log('');
    console.log(bold(`${i + 1}/${JOBS.length}  ${job.heading}`));
    const args = [...base, ...job.flags, '--', job.command];
    console.log(cyan(`$ octask run ${args.map(shellQuote).join(' ')}`));
    const run = await runCli(cliBin, [...base, ...job.flags, '--json', '--', job.command], abort);
    if (abort.aborted) throw new Interrupted();
    const status = run.signal ?? String(run.code);
    const exitOk = run.code === job.cliExit;
    console.log(
      (exitOk ? dim : red)(
        `-> octask exited ${status} after ${seconds(run.ms)}${exitOk ? '' : `; expected ${job.cliExit}`}`,
      ),
    );
    const jobProblems: string[] = [];
    if (!exitOk) jobProblems.push(`octask run exited ${status}, expected ${job.cliExit}`);
    let tasks: TaskResult[] = [];
    try {
      tasks = parseRunJson(run.stdout);
    } catch (err) {
      jobProblems.push(`octask run ${(err as Error).message}`);
    }
    if (tasks.length > 0) {
      for (const t of tasks) {
        const p = taskProblem(t, job.expect);
        if (p) jobProblems.push(p);
      }
      jobProblems.push(...job.check(tasks, run.stderr));
    }
    problems.push(...jobProblems.map((p) => `${job.name}: ${p}`));
    results.push({ job, tasks });
  }

  // Stop the agents here (not only on the way out) to check that they leave cleanly.
  const stopped = await Promise.all(agents.map((a) => a.stop()));
  stopped.forEach((how, i) => {
    if (how !== null) problems.push(`agent ${agents[i]?.name ?? i} ${how}`);
  });

  console.log('');
  console.log(bold('Summary'));
  const rows = results.flatMap(({ job, tasks }) =>
    [...tasks]
      .sort(
        (a, b) => (a.shard ?? 0) - (b.shard ?? 0) || String(a.agent).localeCompare(String(b.agent)),
      )
      .map((t) => [
        job.name,
        t.id,
        t.agent ?? '-',
        t.shard === null ? '-' : String(t.shard),
        t.status,
        t.exitCode !== null ? String(t.exitCode) : (t.signal ?? '-'),
        seconds(t.durationMs),
        taskProblem(t, job.expect) === null ? 'yes' : 'NO',
      ]),
  );
  console.log(
    formatTable(
      ['job', 'task id', 'agent', 'shard', 'status', 'exit code', 'duration', 'as expected'],
      rows,
      { rightAligned: new Set([6]) },
    ),
  );
  const shardAgents = new Set(results[0]?.tasks.map((t) => t.agent));
  if (results[0] && results[0].tasks.length > 0 && shardAgents.size < AGENT_NAMES.length)
    console.log(dim(`(note: all shards ran on ${[...shardAgents].join(', ')} this time)`));

  console.log('');
  if (problems.length > 0) {
    console.log(red(bold(`The demo did not go as expected (${problems.length} problem(s)):`)));
    for (const p of problems) console.log(red(`  - ${p}`));
    for (const a of agents) {
      const lines = a.problems();
      if (lines.length > 0)
        console.log(`agent ${a.name} logged:\n${lines.map((l) => `    ${l}`).join('\n')}`);
    }
    return false;
  }
  const count = results.reduce((n, r) => n + r.tasks.length, 0);
  console.log(
    green(
      bold(
        `The demo worked: ${count} tasks in ${JOBS.length} jobs on ${agents.length} agents, every one as expected.`,
      ),
    ),
  );
  console.log(
    'Next: run "octask key" to see your own cluster key and how to add a device to the cluster.',
  );
  return true;
}

async function main(): Promise<number> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'octask-demo-'));
  const agents: DemoAgent[] = [];
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      console.error(`\n${signal}: stopping the demo (again to quit at once)`);
      controller.abort();
      return;
    }
    agents.forEach((a) => a.kill());
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  const signalNames: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  signalNames.forEach((s) => process.on(s, onSignal));
  // Our own output closed (e.g. `npm run demo | head`): stop as if interrupted, but exit 1.
  let abortCode = 130;
  const onOutputError = (): void => {
    if (controller.signal.aborted) return;
    abortCode = 1;
    controller.abort();
  };
  process.stdout.on('error', onOutputError);
  process.stderr.on('error', onOutputError);

  let code: number;
  try {
    code = (await demo(controller.signal, agents, dir)) ? 0 : 1;
  } catch (err) {
    if (err instanceof Interrupted || controller.signal.aborted) {
      code = abortCode;
    } else {
      console.log(red(`The demo failed: ${(err as Error).message}`));
      code = 1;
    }
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(dim(`(agents stopped, ${dir} removed; ${seconds(Date.now() - started)} in all)`));
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo: internal error: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
