import { StringDecoder } from 'node:string_decoder';
import { createConnection, ResponseError } from 'vscode-languageserver/node';
import type { ClusterKey } from '../../shared/clusterKey';
import { ErrorCode, isOctaskError } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import type { LogEvent, OutputEvent, SubmitResult, TaskSpec } from '../../shared/rpc';
import { RpcMethod } from '../../shared/rpc';
import { OCTASK_VERSION } from '../../shared/version';
import { Dispatcher } from './dispatcher';
import { prepareWorkspaceAt } from './sync/prepare';
import { WorkspaceFeed } from './sync/workspaceFeed';
import { WorkspaceWatches } from './sync/workspaceWatch';
import type { OutputChunk } from './journal';
import { Journal } from './journal';
import type { RestoredTask } from './dispatcher';

/**
 * What the editor may pass in `initializationOptions`; each overrides the
 * CLI's flag. Never the key: a verbose trace logs these (see CLUSTER_KEY_ENV).
 */
export interface DispatcherInitOptions {
  agents?: string[];
  mdns?: boolean;
  /** Milliseconds an agent's link may be down before its tasks run elsewhere. */
  lostAfterMs?: number;
  /**
   * A folder of the editor's own (its extension storage) for the journal:
   * tasks, output and the event log survive a window reload or a crash.
   */
  stateDir?: string;
}

export interface RpcServerDefaults {
  /** Loads the key: the one the editor handed over, or the key file's. */
  loadKey(): ClusterKey;
  agents: string[];
  mdns: boolean;
  lostAfterMs: number;
  heartbeatMs?: number;
  /** Where the journal lives (tasks, output, events survive a restart); none: nothing kept. */
  stateDir?: string;
}

/**
 * How long agents keep an editor's tasks while its dispatcher is away: a
 * window reload or a crash comes back well within it, a closed editor does not.
 */
export const EDITOR_GRACE_MS = 30 * 60_000;

/** Log fields as JSON can carry them: errors as their message, anything odd as text. */
function plainFields(fields: Record<string, unknown>): Record<string, unknown> {
  try {
    return JSON.parse(
      JSON.stringify(fields, (_key, value: unknown) =>
        value instanceof Error ? value.message : value,
      ),
    ) as Record<string, unknown>;
  } catch {
    return { details: String(fields) };
  }
}

/** JSON-RPC error codes: application range, one per Octask error code family. */
const RPC_ERROR = -32001;

/**
 * Serves the dispatcher over JSON-RPC on stdin/stdout (LSP framing), the way
 * vscode-languageclient starts a server. The only file that imports
 * vscode-languageserver.
 */
export function serveRpc(defaults: RpcServerDefaults): Promise<void> {
  const connection = createConnection(process.stdin, process.stdout);
  let dispatcher: Dispatcher | undefined;
  let journal: Journal | undefined;
  /** Output the journal had for each task at start (what a reloaded editor asks for). */
  let history = new Map<string, OutputChunk[]>();
  const decoders = new Map<string, StringDecoder>();

  const log = (
    level: LogEvent['level'],
    message: string,
    fields?: Record<string, unknown>,
  ): void => {
    const event: LogEvent = {
      level,
      message,
      ...(fields ? { fields: plainFields(fields) } : {}),
      time: Date.now(),
    };
    if (level !== 'debug') journal?.event(event);
    void connection.sendNotification(RpcMethod.log, event);
  };
  const logger: Logger = {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
  };
  // The editor's dispatcher lives long: watching its workspaces makes a no-change sync's preparation a loop turn.
  const watches = new WorkspaceWatches({ log: (m) => log('info', m) });
  const need = (): Dispatcher => {
    if (!dispatcher)
      throw new ResponseError(RPC_ERROR, 'the dispatcher is not initialized yet', {
        code: ErrorCode.BadRequest,
      });
    return dispatcher;
  };
  const guard =
    <P, R>(fn: (params: P) => R) =>
    (params: P): R => {
      try {
        return fn(params);
      } catch (err) {
        if (err instanceof ResponseError) throw err;
        if (isOctaskError(err)) throw new ResponseError(RPC_ERROR, err.message, { code: err.code });
        throw new ResponseError(RPC_ERROR, String(err), { code: ErrorCode.BadRequest });
      }
    };

  connection.onInitialize(async (params) => {
    const init = (params.initializationOptions ?? {}) as DispatcherInitOptions;
    let key: ClusterKey;
    try {
      key = defaults.loadKey();
    } catch (err) {
      throw new ResponseError(RPC_ERROR, (err as Error).message, {
        code: isOctaskError(err) ? err.code : ErrorCode.BadKeyFile,
      });
    }
    const stateDir = init.stateDir ?? defaults.stateDir;
    const restored = stateDir ? await openJournal(stateDir, log) : undefined;
    journal = restored?.journal;
    history = restored?.history ?? new Map();
    const d = new Dispatcher({
      key,
      agents: init.agents ?? defaults.agents,
      mdns: init.mdns ?? defaults.mdns,
      lostAfterMs: init.lostAfterMs ?? defaults.lostAfterMs,
      heartbeatMs: defaults.heartbeatMs,
      graceMs: EDITOR_GRACE_MS,
      logger,
      ...(journal ? { id: journal.dispatcherId } : {}),
    });
    dispatcher = d;
    // The dispatcher hands out its live records, and a notification is
    // serialized only when the writer gets to it: send a copy of the state as
    // it is now, or a later status could overtake the output before it.
    dispatcher.on(
      'agent',
      (a) => void connection.sendNotification(RpcMethod.workersDidChange, structuredClone(a)),
    );
    dispatcher.on('task', (t) => {
      const record = d.journalRecord(t.id);
      if (record && journal) {
        const root = record.spec.sync?.root;
        journal.task({ ...record, ...(root ? { workspaceRoot: root } : {}) });
      }
      void connection.sendNotification(RpcMethod.tasksDidChange, structuredClone(t));
      if (t.status !== 'pending' && t.status !== 'running') {
        decoders.delete(`${t.id}\0stdout`);
        decoders.delete(`${t.id}\0stderr`);
      }
    });
    dispatcher.on(
      'sync',
      (s) => void connection.sendNotification(RpcMethod.syncDidChange, structuredClone(s)),
    );
    dispatcher.on(
      'syncProgress',
      (p) => void connection.sendNotification(RpcMethod.syncProgress, structuredClone(p)),
    );
    dispatcher.on(
      'artifacts',
      (a) => void connection.sendNotification(RpcMethod.artifactsDidChange, structuredClone(a)),
    );
    dispatcher.on('output', (chunk) => {
      const k = `${chunk.task}\0${chunk.stream}`;
      let decoder = decoders.get(k);
      if (!decoder) decoders.set(k, (decoder = new StringDecoder('utf8')));
      const text = decoder.write(
        Buffer.from(chunk.data.buffer, chunk.data.byteOffset, chunk.data.byteLength),
      );
      if (text) journal?.output(chunk.task, chunk.stream, text, chunk);
      if (text)
        void connection.sendNotification(RpcMethod.output, {
          task: chunk.task,
          stream: chunk.stream,
          text,
        } satisfies OutputEvent);
    });
    if (restored) d.restore(restored.tasks);
    return { capabilities: {}, serverInfo: { name: 'octask-dispatcher', version: OCTASK_VERSION } };
  });
  connection.onInitialized(() => dispatcher?.start());
  connection.onRequest(RpcMethod.submit, async (spec: TaskSpec): Promise<SubmitResult> => {
    const dispatcher = guard(need)(undefined);
    let prepared: Awaited<ReturnType<typeof prepareWorkspaceAt>> | undefined;
    // A first sync streams to an agent without a copy while the workspace is hashed.
    const feed = new WorkspaceFeed();
    if (spec.sync) dispatcher.streamTo(feed, spec);
    try {
      prepared = spec.sync
        ? await watches.prepare(spec.sync.root, { ...spec.sync, feed })
        : undefined;
      feed.end(prepared?.workspace ?? new Error('nothing to sync'));
    } catch (err) {
      feed.end(err as Error);
      throw new ResponseError(
        RPC_ERROR,
        `cannot read the workspace ${spec.sync?.root}: ${(err as Error).message}`,
        {
          code: ErrorCode.BadPath,
        },
      );
    }
    for (const s of prepared?.skipped ?? []) log('warn', `not synced: ${s.path}: ${s.reason}`);
    return guard((s: TaskSpec) => ({ tasks: dispatcher.submit(s, prepared?.workspace) }))(spec);
  });
  connection.onRequest(
    RpcMethod.cancel,
    guard((params: { id: string }) => need().cancel(params.id)),
  );
  connection.onRequest(
    RpcMethod.listTasks,
    guard(() => need().tasks.list()),
  );
  connection.onRequest(
    RpcMethod.listAgents,
    guard(() => need().agents()),
  );
  connection.onRequest(
    RpcMethod.addAgent,
    guard((params: { address: string }) => need().addAgent(params.address)),
  );
  connection.onRequest(
    RpcMethod.removeAgent,
    guard((params: { address: string }) => need().removeAgent(params.address)),
  );
  connection.onRequest(
    RpcMethod.reconnectAgent,
    guard((params: { address: string }) => need().reconnect(params.address)),
  );
  connection.onRequest(
    RpcMethod.taskOutput,
    guard((params: { id: string }): OutputChunk[] => history.get(params.id) ?? []),
  );
  connection.onShutdown(() => {
    watches.close();
    dispatcher?.close();
    journal?.close();
  });

  return new Promise((resolve) => {
    connection.onExit(() => resolve());
    connection.listen();
  });
}

/**
 * Opens the journal in `dir` and reads back what a previous run left: the
 * tasks to take back (workspaces prepared again for those not finished) and
 * each task's output so far.
 */
async function openJournal(
  dir: string,
  log: (level: LogEvent['level'], message: string, fields?: Record<string, unknown>) => void,
): Promise<{ journal: Journal; tasks: RestoredTask[]; history: Map<string, OutputChunk[]> }> {
  const journal = Journal.open(dir, {
    onError: (err) => log('warn', `the task journal could not be written: ${err.message}`),
  });
  const state = journal.load();
  if (state.damagedLines > 0)
    log('warn', `the task journal had ${state.damagedLines} unreadable lines; they were skipped`);
  const tasks: RestoredTask[] = [];
  for (const t of state.tasks) {
    const unfinished = t.info.status === 'pending' || t.info.status === 'running';
    let workspace: RestoredTask['workspace'];
    if (unfinished && t.spec.sync) {
      try {
        workspace = (await prepareWorkspaceAt(t.spec.sync.root, t.spec.sync)).workspace;
      } catch (err) {
        log(
          'warn',
          `cannot read the workspace of task ${t.info.id} again: ${(err as Error).message}`,
        );
      }
    }
    // The journal's own record of output says where it stands; the task record may lag it.
    const seen = state.seqs.get(t.info.id);
    const attempt = t.attempt
      ? { ...t.attempt, lastSeq: seen?.wireId === t.attempt.wireId ? seen.seq : -1 }
      : undefined;
    tasks.push({
      info: t.info,
      spec: t.spec,
      ...(attempt ? { attempt } : {}),
      ...(workspace ? { workspace } : {}),
    });
  }
  if (tasks.length > 0) log('info', `took back ${tasks.length} tasks from the journal`);
  return { journal, tasks, history: state.outputs };
}
