import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import {
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-jsonrpc/node';
import type { ClusterKey } from '../../shared/clusterKey';
import { formatKey } from '../../shared/clusterKey';
import type { OutputEvent, TaskInfo, TaskSpec } from '../../shared/rpc';
import { RpcMethod } from '../../shared/rpc';
import { CLI_BIN } from './agentProcess';
import { dispatcherLaunch } from '../../extension/client/dispatcherLaunch';

/** `octask dispatcher --stdio` as an editor window runs it, driven over JSON-RPC. */
export interface RpcDispatcher {
  proc: ChildProcess;
  rpc: MessageConnection;
  /** Latest state of each task, as notified. */
  tasks: Map<string, TaskInfo>;
  /** Output text per task, as notified. */
  output: Map<string, string>;
  submit(spec: TaskSpec): Promise<TaskInfo[]>;
  /** Resolves with the task once it is final. */
  final(id: string): Promise<TaskInfo>;
  /** Kills the process (SIGKILL unless told). */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function startRpcDispatcher(options: {
  key: ClusterKey;
  agents: string[];
  stateDir?: string;
  lostAfterMs?: number;
  env?: NodeJS.ProcessEnv;
}): Promise<RpcDispatcher> {
  // The key goes the way the editor hands it over: in the environment, never in a message.
  const launch = dispatcherLaunch({
    key: formatKey(options.key),
    agents: options.agents,
    mdns: false,
  });
  const proc = spawn(process.execPath, [CLI_BIN, 'dispatcher', '--stdio', '--no-mdns'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...launch.env, ...options.env },
  });
  const rpc = createMessageConnection(
    new StreamMessageReader(proc.stdout!),
    new StreamMessageWriter(proc.stdin!),
  );
  const tasks = new Map<string, TaskInfo>();
  const output = new Map<string, string>();
  const waiters = new Map<string, Array<(t: TaskInfo) => void>>();
  rpc.onNotification(RpcMethod.tasksDidChange, (t: TaskInfo) => {
    tasks.set(t.id, t);
    if (t.status === 'pending' || t.status === 'running') return;
    for (const w of waiters.get(t.id) ?? []) w(t);
    waiters.delete(t.id);
  });
  rpc.onNotification(RpcMethod.output, (o: OutputEvent) => {
    output.set(o.task, (output.get(o.task) ?? '') + o.text);
  });
  rpc.listen();
  await rpc.sendRequest('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: {},
    initializationOptions: {
      ...launch.initializationOptions,
      ...(options.stateDir ? { stateDir: options.stateDir } : {}),
      ...(options.lostAfterMs !== undefined ? { lostAfterMs: options.lostAfterMs } : {}),
    },
  });
  await rpc.sendNotification('initialized', {});
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    rpc,
    tasks,
    output,
    submit: async (spec) =>
      (await rpc.sendRequest<{ tasks: TaskInfo[] }>(RpcMethod.submit, spec)).tasks,
    final: (id) => {
      const known = tasks.get(id);
      if (known && known.status !== 'pending' && known.status !== 'running')
        return Promise.resolve(known);
      return new Promise((resolve) => waiters.set(id, [...(waiters.get(id) ?? []), resolve]));
    },
    kill: async (signal = 'SIGKILL') => {
      rpc.dispose();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}
