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

/**
 * What the editor may pass in `initializationOptions`; each overrides the
 * CLI's flag. Never the key: a verbose trace logs these (see CLUSTER_KEY_ENV).
 */
export interface DispatcherInitOptions {
  agents?: string[];
  mdns?: boolean;
}

export interface RpcServerDefaults {
  /** Loads the key: the one the editor handed over, or the key file's. */
  loadKey(): ClusterKey;
  agents: string[];
  mdns: boolean;
}

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
  const decoders = new Map<string, StringDecoder>();

  const log = (
    level: LogEvent['level'],
    message: string,
    fields?: Record<string, unknown>,
  ): void => {
    void connection.sendNotification(RpcMethod.log, {
      level,
      message,
      ...(fields ? { fields: plainFields(fields) } : {}),
      time: Date.now(),
    } satisfies LogEvent);
  };
  const logger: Logger = {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
  };
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

  connection.onInitialize((params) => {
    const init = (params.initializationOptions ?? {}) as DispatcherInitOptions;
    let key: ClusterKey;
    try {
      key = defaults.loadKey();
    } catch (err) {
      throw new ResponseError(RPC_ERROR, (err as Error).message, {
        code: isOctaskError(err) ? err.code : ErrorCode.BadKeyFile,
      });
    }
    dispatcher = new Dispatcher({
      key,
      agents: init.agents ?? defaults.agents,
      mdns: init.mdns ?? defaults.mdns,
      logger,
    });
    // The dispatcher hands out its live records, and a notification is
    // serialized only when the writer gets to it: send a copy of the state as
    // it is now, or a later status could overtake the output before it.
    dispatcher.on(
      'agent',
      (a) => void connection.sendNotification(RpcMethod.workersDidChange, structuredClone(a)),
    );
    dispatcher.on('task', (t) => {
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
      if (text)
        void connection.sendNotification(RpcMethod.output, {
          task: chunk.task,
          stream: chunk.stream,
          text,
        } satisfies OutputEvent);
    });
    return { capabilities: {}, serverInfo: { name: 'octask-dispatcher', version: OCTASK_VERSION } };
  });
  connection.onInitialized(() => dispatcher?.start());
  connection.onRequest(RpcMethod.submit, async (spec: TaskSpec): Promise<SubmitResult> => {
    const dispatcher = guard(need)(undefined);
    let prepared: Awaited<ReturnType<typeof prepareWorkspaceAt>> | undefined;
    try {
      prepared = spec.sync ? await prepareWorkspaceAt(spec.sync.root, spec.sync) : undefined;
    } catch (err) {
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
  connection.onShutdown(() => dispatcher?.close());

  return new Promise((resolve) => {
    connection.onExit(() => resolve());
    connection.listen();
  });
}
