import { parseArgs } from 'node:util';
import { ErrorCode, OctaskError } from '../shared/errors';
import type { Target, TaskInfo, TaskSpec } from '../shared/rpc';
import { parseTarget } from '../shared/rpc';
import { DEFAULT_GRACE_MS, Dispatcher } from '../extension/dispatcher/dispatcher';
import { taskNotice } from '../shared/taskNotice';
import { createStreamLogger } from '../agent/log';
import {
  DISPATCHER_FLAGS,
  DISPATCHER_FLAGS_USAGE,
  dispatcherFlags,
  loadKey,
} from './dispatcherFlags';
import { EXIT, runExitCode } from '../shared/exitCode';
import { OutputPaths } from './outputPaths';
import { OutputPrinter } from './outputPrinter';
import { MAX_TIMEOUT_SEC, timeoutSecProblem } from '../shared/validate';
import { whileSlow } from './progressLine';
import { watchTransfers } from './transfers';
import { warnSharedNames } from './agents';
import type { CliWorkspace } from './workspace';
import { prepareCliWorkspace } from './workspace';
import { WorkspaceFeed } from '../extension/dispatcher/sync/workspaceFeed';

export const RUN_USAGE = `Usage: octask run [options] -- COMMAND...

Runs COMMAND (the words joined, run by the agent's shell) on the cluster,
streaming its output. Exit status: the command's own for one task; for
several, 0 if all completed, else the first failure's in shard order;
124 timed out, 130 interrupted, 125 Octask could not run it.

Options:
${DISPATCHER_FLAGS_USAGE}
  --target T          any (default), all, or an agent's name
  --shards N          split into N tasks; each gets OCTASK_SHARD_INDEX and OCTASK_SHARD_COUNT
  --timeout SEC       end the task (its whole process group) after SEC seconds
  --retries N         run a failed command again up to N times (default 0)
  --pack              fill one agent's free slots before using the next (default: spread)
  --env K=V           set a variable for the command (repeatable)
  --json              print a JSON result on stdout; task output goes to stderr
  --verbose           log the dispatcher's events to stderr

Workspace sync (the git work tree around the current folder, by default):
  --workspace DIR     sync this folder instead (also outside git)
  --no-sync           run in a scratch folder; send no files
  --include GLOB      also send files matching GLOB, even if git ignores them (repeatable)
  --exclude GLOB      do not send files matching GLOB (repeatable)
  --cwd SUBDIR        run in this folder of the workspace (default: the current folder's place in it)
  --clean             a fresh copy: remove what earlier tasks made on the agent (by default
                      the copy behaves like a checkout and keeps node_modules, build output)
  --preserve GLOB     never remove files matching GLOB (any depth) from the agent's copy,
                      even with --clean or once they left the workspace (repeatable)
  --setup CMD         run CMD in the agent's copy before the task, once per agent until the
                      --setup-key files change (e.g. --setup 'npm ci' --setup-key package-lock.json)
  --setup-key GLOB    files whose content decides when --setup runs again (repeatable)
  --artifacts GLOB    bring files matching GLOB back after the task (repeatable); relative to
                      --cwd, a leading / for the workspace root; with --target all each agent's
                      files land in a folder named for it (out/pi/app)
`;

/** How long `run` waits with queued work and no agent online before giving up. */
const NO_AGENT_GRACE_MS = 10_000;

export async function runCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      ...DISPATCHER_FLAGS,
      target: { type: 'string' },
      shards: { type: 'string' },
      timeout: { type: 'string' },
      retries: { type: 'string' },
      pack: { type: 'boolean' },
      env: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      verbose: { type: 'boolean' },
      workspace: { type: 'string' },
      'no-sync': { type: 'boolean' },
      include: { type: 'string', multiple: true },
      exclude: { type: 'string', multiple: true },
      cwd: { type: 'string' },
      preserve: { type: 'string', multiple: true },
      clean: { type: 'boolean' },
      setup: { type: 'string' },
      'setup-key': { type: 'string', multiple: true },
      artifacts: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(RUN_USAGE);
    return EXIT.ok;
  }
  if (positionals.length === 0) throw new UsageError('no command given; put it after --');
  // Said before the workspace is hashed (which may take a while), and before its cache is written.
  if (values['setup-key'] && values.setup === undefined)
    throw new UsageError('--setup-key needs --setup CMD');
  if (values.setup !== undefined && values.setup.trim() === '')
    throw new UsageError('--setup needs a command');
  const spec = buildSpec(positionals.join(' '), values);
  const flags = dispatcherFlags(values);
  const key = loadKey(flags);
  const json = values.json ?? false;

  const logger = createStreamLogger({ level: values.verbose ? 'debug' : 'error', pretty: true });
  const dispatcher = new Dispatcher({
    key,
    agents: flags.agents,
    mdns: flags.mdns,
    lostAfterMs: flags.lostAfterMs,
    heartbeatMs: flags.heartbeatMs,
    // A CLI run that is killed leaves its tasks to this grace; a terminal user comes back soon or not at all.
    graceMs: DEFAULT_GRACE_MS,
    logger,
  });
  // Connected while the workspace is read: the handshake overlaps the
  // hashing, and an agent without a copy is sent files as they are hashed.
  dispatcher.start();
  const feed = new WorkspaceFeed();
  dispatcher.streamTo(feed, spec);
  try {
    const workspace = await whileSlow(
      process.stderr,
      'octask: reading and hashing the workspace…',
      prepareCliWorkspace(
        {
          workspace: values.workspace,
          noSync: values['no-sync'] ?? false,
          include: values.include ?? [],
          exclude: values.exclude ?? [],
          preserve: values.preserve ?? [],
          clean: values.clean ?? false,
          cwd: values.cwd,
        },
        process.env,
        feed,
      ),
    );
    // Prepared by the watcher, or nothing to sync: the feed never opened; it ends all the same.
    feed.end(workspace?.prepared ?? new Error('no workspace to sync'));
    if (workspace)
      logger.debug('workspace prepared', {
        by: workspace.by,
        files: workspace.prepared.entryCount,
        ms: workspace.ms,
      });
    if (workspace) {
      spec.cwd = workspace.cwd;
      spec.artifacts = values.artifacts ?? [];
      if (values.setup !== undefined)
        spec.setup = { command: values.setup, key: values['setup-key'] ?? [] };
      for (const s of workspace.skipped)
        process.stderr.write(`octask: not synced: ${s.path}: ${s.reason}\n`);
    } else if (values.artifacts?.length || values.setup !== undefined) {
      // No workspace: nothing was hashed, and no cache is being written.
      throw new UsageError(
        '--artifacts and --setup need a synced workspace (run inside a git work tree, or give --workspace)',
      );
    }
    try {
      // A setup's key digests manifest entries when the task is placed: have them by then.
      if (spec.setup) await workspace?.prepared.loadEntries?.();
      return await execute(dispatcher, spec, json, workspace);
    } finally {
      await workspace?.afterRun();
    }
  } finally {
    dispatcher.close();
  }
}

async function execute(
  dispatcher: Dispatcher,
  spec: TaskSpec,
  json: boolean,
  workspace: CliWorkspace | null,
): Promise<number> {
  const transfers = watchTransfers(dispatcher, workspace, json);
  // 'all', a named target and shards (spread over agents) need every agent's
  // answer; one task for any agent can start on the first.
  const oneForAny = spec.target?.kind === 'any' && (spec.shards ?? 1) === 1;
  await (oneForAny ? firstOnline(dispatcher) : dispatcher.settled());
  if (!anyOnline(dispatcher)) {
    const wrongKey = dispatcher.agents().some((a) => a.status === 'wrong_key');
    throw new OctaskError(
      wrongKey ? ErrorCode.WrongKey : ErrorCode.NoAgents,
      noAgentsReason(dispatcher),
    );
  }
  warnSharedNames(dispatcher.agents());
  const tasks = dispatcher.submit(spec, workspace?.prepared);
  const ids = new Set(tasks.map((t) => t.id));
  const labels = new Map<string, string>();
  const label = (t: TaskInfo): void => {
    if (t.agent) labels.set(t.id, t.shard === null ? t.agent : `${t.agent}#${t.shard}`);
  };
  tasks.forEach(label);
  const multi = tasks.length > 1;
  const printer = new OutputPrinter(
    json ? process.stderr : process.stdout,
    process.stderr,
    multi ? (id) => labels.get(id) ?? id : null,
  );
  const latest = new Map(tasks.map((t) => [t.id, t]));
  const paths = workspace ? new OutputPaths(workspace.prepared.root) : null;
  const flushTask = (id: string): void => {
    for (const rest of paths?.flush(id) ?? []) printer.write(id, rest.stream, rest.data);
    printer.flush(id);
  };

  return await new Promise<number>((resolve) => {
    let interrupted = false;
    let noAgentTimer: NodeJS.Timeout | undefined;
    const finishIfDone = (): void => {
      const all = [...latest.values()];
      if (!all.every((t) => isOver(t))) return;
      cleanup();
      for (const t of all) flushTask(t.id);
      transfers.stop();
      if (json)
        process.stdout.write(
          JSON.stringify({ tasks: all.map(toJson), ...transfers.json() }) + '\n',
        );
      else report(all);
      resolve(interrupted ? EXIT.interrupted : runExitCode(all));
    };
    const offTask = dispatcher.on('task', (t) => {
      if (!ids.has(t.id)) return;
      const notice = taskNotice(latest.get(t.id), t);
      if (notice) {
        const who = multi ? `[${labels.get(t.id) ?? t.id}] ` : '';
        process.stderr.write(`octask: ${who}${notice}\n`);
      }
      latest.set(t.id, { ...t });
      label(t);
      if (isOver(t)) flushTask(t.id);
      finishIfDone();
    });
    const offOutput = dispatcher.on('output', (chunk) => {
      if (!ids.has(chunk.task)) return;
      const root = latest.get(chunk.task)?.agentRoot ?? undefined;
      const data = paths ? paths.map(chunk.task, chunk.stream, root, chunk.data) : chunk.data;
      if (!printer.write(chunk.task, chunk.stream, data)) {
        // The terminal is behind: stop reading agents until it drains.
        dispatcher.pauseOutput();
        (chunk.stream === 'stdout' && !json ? process.stdout : process.stderr).once('drain', () =>
          dispatcher.resumeOutput(),
        );
      }
    });
    const offAgent = dispatcher.on('agent', () => {
      if (anyOnline(dispatcher)) {
        clearTimeout(noAgentTimer);
        noAgentTimer = undefined;
      } else if (!noAgentTimer) {
        noAgentTimer = setTimeout(
          () =>
            dispatcher.failPending({
              code: ErrorCode.NoAgents,
              message: noAgentsReason(dispatcher),
            }),
          NO_AGENT_GRACE_MS,
        );
      }
    });
    const onSigint = (): void => {
      if (interrupted) {
        cleanup();
        resolve(EXIT.interrupted);
        return;
      }
      interrupted = true;
      process.stderr.write(
        '\noctask: interrupted; cancelling the remote tasks (Ctrl+C again to quit at once)\n',
      );
      for (const id of ids) dispatcher.cancel(id);
    };
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigint);
    const cleanup = (): void => {
      offTask();
      offOutput();
      offAgent();
      clearTimeout(noAgentTimer);
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigint);
    };
    finishIfDone();
  });
}

function anyOnline(dispatcher: Dispatcher): boolean {
  return dispatcher.agents().some(isConnected);
}

function isConnected(a: { status: string }): boolean {
  return a.status === 'online' || a.status === 'busy' || a.status === 'resting';
}

function isOver(t: TaskInfo): boolean {
  return t.status !== 'pending' && t.status !== 'running';
}

/** Resolves as soon as one agent is online, or when every known one has settled. */
function firstOnline(dispatcher: Dispatcher): Promise<void> {
  // Dialling began while the workspace was read: an agent may be online already.
  if (anyOnline(dispatcher)) return Promise.resolve();
  return new Promise((resolve) => {
    const off = dispatcher.on('agent', (a) => {
      if (isConnected(a)) {
        off();
        resolve();
      }
    });
    void dispatcher.settled().then(() => {
      off();
      resolve();
    });
  });
}

function noAgentsReason(dispatcher: Dispatcher): string {
  const agents = dispatcher.agents();
  if (agents.length === 0) {
    return 'no agent reachable: none found by mDNS and none listed; add one with --agent HOST:PORT';
  }
  const wrong = agents.filter((a) => a.status === 'wrong_key');
  if (wrong.length === agents.length) {
    return `wrong key: ${wrong.length === 1 ? 'the agent holds' : 'the agents hold'} a different cluster key than this machine (${wrong[0]?.lastError?.message ?? ''})`;
  }
  return `no agent reachable: ${agents.map((a) => `${a.address}: ${a.lastError?.message ?? a.status}`).join('; ')}`;
}

function toJson(t: TaskInfo) {
  return {
    id: t.id,
    agent: t.agent,
    status: t.status,
    exitCode: t.exitCode,
    signal: t.signal,
    durationMs: t.durationMs,
    attempts: t.attempts,
    shard: t.shard,
    ...(t.error ? { error: t.error } : {}),
  };
}

/** Failures get a line on stderr; several tasks get a one-line tally. */
function report(tasks: TaskInfo[]): void {
  for (const t of tasks) {
    if (t.error) process.stderr.write(`octask: ${t.error.code}: ${t.error.message}\n`);
    else if (t.status === 'timed_out')
      process.stderr.write(`octask: task ${t.id} on ${t.agent} timed out\n`);
  }
  if (tasks.length > 1) {
    const counts = new Map<string, number>();
    for (const t of tasks) counts.set(t.status, (counts.get(t.status) ?? 0) + 1);
    process.stderr.write(
      `octask: ${tasks.length} tasks: ${[...counts].map(([s, n]) => `${n} ${s}`).join(', ')}\n`,
    );
  }
}

export class UsageError extends Error {}

function buildSpec(
  command: string,
  values: {
    target?: string;
    shards?: string;
    timeout?: string;
    retries?: string;
    env?: string[];
    pack?: boolean;
  },
): TaskSpec {
  const target: Target = parseTarget(values.target);
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new UsageError(`--env takes NAME=VALUE, got ${JSON.stringify(pair)}`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const count = (name: string, text: string | undefined, min: number): number | undefined => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min)
      throw new UsageError(
        `--${name} must be a whole number of at least ${min}, got ${JSON.stringify(text)}`,
      );
    return n;
  };
  const timeout = values.timeout === undefined ? undefined : Number(values.timeout);
  if (timeout !== undefined && (!(timeout > 0) || timeoutSecProblem(timeout)))
    throw new UsageError(
      `--timeout must be a positive number of seconds up to ${MAX_TIMEOUT_SEC} (about 24 days), got ${JSON.stringify(values.timeout)}`,
    );
  const retries = count('retries', values.retries, 0);
  return {
    command,
    env,
    target,
    shards: count('shards', values.shards, 1) ?? 1,
    timeoutSec: timeout,
    retries: retries ?? 0,
    lostRetries: Math.max(1, retries ?? 0),
    ...(values.pack ? { pack: true } : {}),
  };
}
