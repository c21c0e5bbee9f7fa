import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import {
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  Trace,
} from 'vscode-jsonrpc/node';
import type {
  AgentInfo,
  OutputEvent,
  SubmitResult,
  SyncInfo,
  SyncProgressInfo,
  TaskInfo,
} from '../../shared/rpc';
import { RpcMethod } from '../../shared/rpc';
import type { ClusterKey } from '../../shared/clusterKey';
import { deriveAgentKey, formatKey } from '../../shared/clusterKey';
import { dispatcherLaunch } from '../../extension/client/dispatcherLaunch';
import type { StartedAgent } from '../helpers/agentProcess';
import { CLI_BIN, newKeyFile, startAgent, tempDir } from '../helpers/agentProcess';

describe('octask dispatcher --stdio speaks JSON-RPC @integration', function () {
  this.timeout(60_000);
  const dir = tempDir();
  let agent: StartedAgent;
  let proc: ChildProcess;
  let rpc: MessageConnection;
  const tasks = new Map<string, TaskInfo>();
  const output: OutputEvent[] = [];
  const workers: AgentInfo[] = [];
  const syncProgress: SyncProgressInfo[] = [];
  const syncs: SyncInfo[] = [];
  /** Every task and output notification in arrival order, as `id status` or `id output`. */
  const arrivals: string[] = [];
  /** A verbose trace of every message both ways, as the editor's octask.trace.server writes it. */
  const trace: string[] = [];
  let key: ClusterKey;

  before(async () => {
    let keyFile: string;
    ({ path: keyFile, key } = newKeyFile(dir.path));
    mkdirSync(join(dir.path, 'ws'));
    agent = await startAgent({ keyFile, name: 'rpc-agent' });
    // No key file on the command line: the key comes the way the editor hands it over.
    const launch = dispatcherLaunch({
      key: formatKey(key),
      agents: [agent.address],
      mdns: false,
    });
    proc = spawn(
      process.execPath,
      [CLI_BIN, 'dispatcher', '--stdio', '--no-mdns', '--key-file', `${dir.path}/absent`],
      { stdio: ['pipe', 'pipe', 'inherit'], env: launch.env },
    );
    rpc = createMessageConnection(
      new StreamMessageReader(proc.stdout!),
      new StreamMessageWriter(proc.stdin!),
    );
    rpc.onNotification(RpcMethod.tasksDidChange, (t: TaskInfo) => {
      tasks.set(t.id, t);
      arrivals.push(`${t.id} ${t.status}`);
    });
    rpc.onNotification(RpcMethod.output, (o: OutputEvent) => {
      output.push(o);
      arrivals.push(`${o.task} output`);
    });
    rpc.onNotification(RpcMethod.workersDidChange, (a: AgentInfo) => void workers.push(a));
    rpc.onNotification(RpcMethod.syncProgress, (p: SyncProgressInfo) => void syncProgress.push(p));
    rpc.onNotification(RpcMethod.syncDidChange, (s: SyncInfo) => void syncs.push(s));
    rpc.listen();
    await rpc.trace(Trace.Verbose, {
      log: (message: unknown, data?: string) =>
        void trace.push(
          `${typeof message === 'string' ? message : JSON.stringify(message)} ${data ?? ''}`,
        ),
    });
    const init = await rpc.sendRequest<{ serverInfo: { name: string } }>('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: {},
      initializationOptions: launch.initializationOptions,
    });
    assert.equal(init.serverInfo.name, 'octask-dispatcher');
    await rpc.sendNotification('initialized', {});
  });
  after(async () => {
    await rpc?.sendRequest('shutdown').catch(() => undefined);
    await rpc?.sendNotification('exit').catch(() => undefined);
    rpc?.dispose();
    proc?.kill();
    await agent?.stop();
    dir.cleanup();
  });

  async function until<T>(what: string, get: () => T | undefined, ms = 10_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = get();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('announces the agent as it comes online', async () => {
    await until('the agent online', () =>
      workers.find((w) => w.name === 'rpc-agent' && w.status === 'online'),
    );
    const list = await rpc.sendRequest<AgentInfo[]>(RpcMethod.listAgents);
    assert.equal(list[0]?.name, 'rpc-agent');
  });

  it('runs a submitted task and streams its output as notifications', async () => {
    const result = await rpc.sendRequest<SubmitResult>(RpcMethod.submit, {
      command: 'echo via rpc; exit 5',
    });
    const id = result.tasks[0]!.id;
    const done = await until('the task to end', () => {
      const t = tasks.get(id);
      return t && t.status !== 'pending' && t.status !== 'running' ? t : undefined;
    });
    assert.equal(done.status, 'failed');
    assert.equal(done.exitCode, 5);
    assert.equal(
      output
        .filter((o) => o.task === id)
        .map((o) => o.text)
        .join(''),
      'via rpc\n',
    );
  });

  it('reports each task as it was at that moment: its output before its one final status', async () => {
    // Quick tasks in a synced folder: the start (with the copy's root), the
    // output and the exit arrive close together, where a notification
    // serialized late would show a later status than the one it announced.
    writeFileSync(join(dir.path, 'ws', 'order.txt'), 'x\n');
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const result = await rpc.sendRequest<SubmitResult>(RpcMethod.submit, {
        command: `echo line-${i} >&2; exit 1`,
        sync: { root: join(dir.path, 'ws') },
      });
      ids.push(result.tasks[0]!.id);
    }
    await until('all 20 to end', () =>
      ids.every((id) => tasks.get(id)?.status === 'failed') ? true : undefined,
    );
    for (const id of ids) {
      const mine = arrivals
        .filter((a) => a.startsWith(`${id} `))
        .map((a) => a.slice(id.length + 1));
      const final = mine.filter((s) => s === 'failed');
      assert.deepEqual(final, ['failed'], `${id}: ${mine.join(' → ')}`);
      assert.equal(mine.at(-1), 'failed', `${id}: ${mine.join(' → ')}`);
      assert.ok(mine.includes('output'), `${id}: ${mine.join(' → ')}`);
    }
  });

  it('cancels a running task', async () => {
    const result = await rpc.sendRequest<SubmitResult>(RpcMethod.submit, { command: 'sleep 30' });
    const id = result.tasks[0]!.id;
    await until('the task to run', () => (tasks.get(id)?.status === 'running' ? true : undefined));
    assert.equal(await rpc.sendRequest<boolean>(RpcMethod.cancel, { id }), true);
    await until('the cancel', () => (tasks.get(id)?.status === 'cancelled' ? true : undefined));
  });

  it('syncs a folder named in the request and runs in its copy, with progress and a checkout', async () => {
    writeFileSync(join(dir.path, 'ws', 'hello.txt'), 'from the workspace\n');
    const result = await rpc.sendRequest<SubmitResult>(RpcMethod.submit, {
      command: 'cat hello.txt; pwd -P',
      sync: { root: join(dir.path, 'ws') },
    });
    const id = result.tasks[0]!.id;
    const done = await until('the task to end', () =>
      tasks.get(id)?.status === 'completed' ? tasks.get(id) : undefined,
    );
    const [text, pwd] = output
      .filter((o) => o.task === id)
      .map((o) => o.text)
      .join('')
      .split(/\n(?=.)/);
    assert.equal(text, 'from the workspace');
    // The editor maps this path in output back to the local folder.
    assert.ok(done.agentRoot, 'the task reports the copy it ran in');
    assert.equal(realpathSync(done.agentRoot), pwd?.trim());
    assert.notEqual(done.agentRoot, join(dir.path, 'ws'));
    // The hello.txt sent shows as progress (files and bytes), then the sync says what it changed.
    const size = 'from the workspace\n'.length;
    const sent = syncProgress.find((p) => p.files === 1 && p.bytes === size);
    assert.ok(
      sent,
      `a syncProgress notification for the file sent: ${JSON.stringify(syncProgress)}`,
    );
    assert.equal(sent.agent, 'rpc-agent');
    const last = syncs.at(-1);
    assert.equal(last?.removed, 0);
    assert.equal(typeof last?.kept, 'number');
    await assert.rejects(
      rpc.sendRequest(RpcMethod.submit, {
        command: 'true',
        sync: { root: join(dir.path, 'missing') },
      }),
      (err: { data?: { code?: string } }) => err.data?.code === 'E_BAD_PATH',
    );
  });

  it('restores a file a task changed in the copy before the next task (a long-lived dispatcher)', async () => {
    const root = join(dir.path, 'ws');
    const runIn = async (command: string): Promise<string> => {
      const result = await rpc.sendRequest<SubmitResult>(RpcMethod.submit, {
        command,
        sync: { root },
      });
      const id = result.tasks[0]!.id;
      await until('the task to end', () =>
        tasks.get(id)?.status === 'completed' ? true : undefined,
      );
      return output
        .filter((o) => o.task === id)
        .map((o) => o.text)
        .join('');
    };
    await runIn('echo scribbled > hello.txt');
    assert.equal(await runIn('cat hello.txt'), 'from the workspace\n');
  });

  it('answers a bad request with a coded error', async () => {
    await assert.rejects(
      rpc.sendRequest(RpcMethod.submit, { command: '' }),
      (err: { data?: { code?: string } }) => err.data?.code === 'E_BAD_REQUEST',
    );
  });

  it('never carries key material in a message: a verbose trace holds no key', () => {
    const text = trace.join('\n');
    assert.ok(trace.length > 20, `the trace caught ${trace.length} lines`);
    assert.match(text, /initializationOptions/, 'the trace holds the initialize request');
    const hex = formatKey(key);
    const derived = deriveAgentKey(key, 'rpc-agent').secret.toString('hex');
    for (const needle of [hex, hex.toUpperCase(), key.secret.toString('base64'), derived])
      assert.equal(text.includes(needle), false, 'key material is in the trace');
  });
});
