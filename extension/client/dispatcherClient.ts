import * as vscode from 'vscode';
import type { LanguageClientOptions, NodeModule, ServerOptions } from 'vscode-languageclient/node';
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  State,
  TransportKind,
} from 'vscode-languageclient/node';
import type {
  AgentInfo,
  ArtifactsInfo,
  SyncInfo,
  SyncProgressInfo,
  LogEvent,
  OutputEvent,
  SubmitResult,
  TaskInfo,
  TaskSpec,
} from '../../shared/rpc';
import { RpcMethod } from '../../shared/rpc';
import type { ClusterModel } from './clusterModel';
import type { DispatcherLaunchOptions } from './dispatcherLaunch';
import { dispatcherLaunch } from './dispatcherLaunch';
import { SettingTraceChannel } from './traceChannel';

/** What the dispatcher is started with; read afresh at each (re)start. */
export interface DispatcherStartOptions extends DispatcherLaunchOptions {
  /** A system Node to run the dispatcher with, instead of VS Code's own. */
  nodePath: string | undefined;
  /** This window's storage for the dispatcher's journal: tasks survive a reload or a crash. */
  stateDir: string | undefined;
  lostAfterMs: number;
}

export type DispatcherState = 'stopped' | 'starting' | 'running' | 'restarting' | 'failed';

/** More crashes than this within CRASH_WINDOW_MS and the extension stops restarting it. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 3 * 60 * 1000;

/**
 * The dispatcher as a child process speaking JSON-RPC through
 * vscode-languageclient. It feeds the model from the dispatcher's
 * notifications, restarts the process when it dies, and says so in the log.
 */
export class DispatcherClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private stateValue: DispatcherState = 'stopped';
  private crashes: number[] = [];
  /** Set while a deliberate restart stops the old process: its tasks are kept. */
  private keepTasks = false;
  /** The JSON-RPC traffic, when `octask.trace.server` asks for it. */
  private readonly trace: SettingTraceChannel;
  private readonly stateEmitter = new vscode.EventEmitter<DispatcherState>();
  readonly onDidChangeState = this.stateEmitter.event;
  /** The reason the dispatcher is not running, when it is not. */
  lastError: string | undefined;

  constructor(
    private readonly scriptPath: string,
    private readonly log: vscode.LogOutputChannel,
    private readonly model: ClusterModel,
    /** Read at every start, the crash restarts included, so a new process gets today's settings. */
    private readonly options: () => DispatcherStartOptions,
  ) {
    this.trace = new SettingTraceChannel(log);
  }

  get state(): DispatcherState {
    return this.stateValue;
  }

  /** Starts (or restarts) the dispatcher with the current key, agents and settings. */
  async start(): Promise<void> {
    // A restart (new key, new settings) with a journal takes the tasks back.
    await this.stop(this.client !== undefined && this.options().stateDir !== undefined);
    const opts = this.options();
    this.setState('starting');
    const launch = dispatcherLaunch(opts);
    const node: NodeModule = {
      module: this.scriptPath,
      args: ['dispatcher'],
      transport: TransportKind.stdio,
      options: { env: launch.env },
      ...(opts.nodePath ? { runtime: opts.nodePath } : {}),
    };
    // When the extension itself is being debugged, the dispatcher waits for a
    // debugger on 9229 too (launch.json: "Attach to the dispatcher").
    const serverOptions: ServerOptions = {
      run: node,
      debug: { ...node, options: { env: launch.env, execArgv: ['--nolazy', '--inspect=9229'] } },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [],
      outputChannel: this.log,
      traceOutputChannel: this.trace,
      initializationOptions: () => dispatcherLaunch(this.options()).initializationOptions,
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue, handled: true }),
        closed: () => this.onClosed(),
      },
    };
    const client = new LanguageClient('octask', 'Octask Dispatcher', serverOptions, clientOptions);
    this.client = client;
    client.onNotification(RpcMethod.workersDidChange, (a: AgentInfo) => this.model.applyAgent(a));
    client.onNotification(RpcMethod.tasksDidChange, (t: TaskInfo) => this.model.applyTask(t));
    client.onNotification(RpcMethod.output, (o: OutputEvent) => this.model.applyOutput(o));
    client.onNotification(RpcMethod.syncDidChange, (s: SyncInfo) => this.model.onSync.fire(s));
    client.onNotification(RpcMethod.syncProgress, (p: SyncProgressInfo) =>
      this.model.onSyncProgress.fire(p),
    );
    client.onNotification(RpcMethod.artifactsDidChange, (a: ArtifactsInfo) =>
      this.model.onArtifacts.fire(a),
    );
    client.onNotification(RpcMethod.log, (e: LogEvent) => {
      this.model.applyLog(e);
      const line = `[dispatcher] ${e.message}${e.fields ? ` ${JSON.stringify(e.fields)}` : ''}`;
      if (e.level === 'error') this.log.error(line);
      else if (e.level === 'warn') this.log.warn(line);
      else if (e.level === 'debug') this.log.debug(line);
      else this.log.info(line);
    });
    client.onDidChangeState((e) => {
      if (e.newState === State.Running) {
        this.setState('running');
        void this.refresh();
      }
    });
    try {
      await client.start();
      this.lastError = undefined;
      this.setState('running');
      await this.refresh();
    } catch (err) {
      this.lastError = (err as Error).message;
      this.log.error(`the dispatcher did not start: ${this.lastError}`);
      this.setState('failed');
    }
  }

  /** Stops the dispatcher; with `restarting` its tasks wait for the next one instead of ending lost. */
  async stop(restarting = false): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    this.keepTasks = restarting;
    this.setState('stopped');
    try {
      if (client.isRunning()) await client.stop(5000);
    } catch (err) {
      this.log.warn(`stopping the dispatcher: ${(err as Error).message}`);
    }
    if (restarting) this.model.dispatcherAway();
    else this.model.dispatcherLost('the dispatcher was stopped');
    this.keepTasks = false;
  }

  /** The running client, or undefined; callers explain the wait to the user. */
  ready(): LanguageClient | undefined {
    return this.stateValue === 'running' && this.client?.isRunning() ? this.client : undefined;
  }

  /** Resolves once the dispatcher runs, or false after `ms`. */
  waitUntilReady(ms: number): Promise<boolean> {
    if (this.ready()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        sub.dispose();
        resolve(false);
      }, ms);
      const sub = this.onDidChangeState(() => {
        if (!this.ready()) return;
        clearTimeout(timer);
        sub.dispose();
        resolve(true);
      });
    });
  }

  /** `label`: the VS Code task's name, which the views show for the run. */
  async submit(spec: TaskSpec, label?: string): Promise<SubmitResult> {
    const result = await this.need().sendRequest<SubmitResult>(RpcMethod.submit, spec);
    const group = result.tasks[0]?.group;
    if (group) this.model.rememberSpec(group, spec, label);
    for (const t of result.tasks) this.model.applyTask(t);
    return result;
  }

  cancel(id: string): Promise<boolean> {
    return this.need().sendRequest<boolean>(RpcMethod.cancel, { id });
  }

  addAgent(address: string): Promise<AgentInfo> {
    return this.need().sendRequest<AgentInfo>(RpcMethod.addAgent, { address });
  }

  /** Cuts a known agent's reconnect backoff short; false when the dispatcher does not know it. */
  reconnectAgent(address: string): Promise<boolean> {
    return this.need().sendRequest<boolean>(RpcMethod.reconnectAgent, { address });
  }

  async removeAgent(address: string): Promise<boolean> {
    const removed = await this.need().sendRequest<boolean>(RpcMethod.removeAgent, { address });
    if (removed) this.model.removeAgent(address);
    return removed;
  }

  dispose(): void {
    void this.stop();
    this.stateEmitter.dispose();
    this.trace.dispose();
  }

  private need(): LanguageClient {
    const client = this.ready();
    if (!client) throw new DispatcherUnavailable(this.stateValue);
    return client;
  }

  /** A new dispatcher process knows nothing of the old one's: read its lists afresh. */
  private async refresh(): Promise<void> {
    const client = this.ready();
    if (!client) return;
    try {
      const [agents, tasks] = await Promise.all([
        client.sendRequest<AgentInfo[]>(RpcMethod.listAgents),
        client.sendRequest<TaskInfo[]>(RpcMethod.listTasks),
      ]);
      for (const a of agents) this.model.applyAgent(a);
      for (const t of tasks) this.model.applyTask(t);
      // A reloaded window knows no output yet: the journal has what came before.
      // Claimed before the requests go out: two refreshes at once must not both prepend it.
      const unknown = tasks.filter((t) => this.model.claimHistory(t.id));
      await Promise.all(
        unknown.map(async (t) => {
          const earlier = await client.sendRequest<Array<{ text: string }>>(RpcMethod.taskOutput, {
            id: t.id,
          });
          this.model.prependOutput(t.id, earlier.map((c) => c.text).join(''));
        }),
      );
    } catch (err) {
      this.log.warn(`reading the dispatcher's state: ${(err as Error).message}`);
    }
  }

  private onClosed(): { action: CloseAction; message?: string; handled: boolean } {
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    const restarting = this.stateValue !== 'stopped' && this.crashes.length <= MAX_CRASHES;
    // With a journal the restarted dispatcher takes its tasks back: they wait, not lost.
    if (this.keepTasks || (restarting && this.options().stateDir)) this.model.dispatcherAway();
    else this.model.dispatcherLost('the dispatcher process exited');
    if (this.stateValue === 'stopped') return { action: CloseAction.DoNotRestart, handled: true };
    if (this.crashes.length > MAX_CRASHES) {
      this.lastError = `the dispatcher exited ${this.crashes.length} times in 3 minutes`;
      const message = `${this.lastError}; not restarting it. Run "Octask: Restart Dispatcher".`;
      this.log.error(message);
      this.model.applyLog({ level: 'error', message, time: now });
      this.setState('failed');
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    const message = `the dispatcher exited unexpectedly; restarting it (${this.crashes.length} of ${MAX_CRASHES} in 3 minutes)`;
    this.log.warn(message);
    this.model.applyLog({ level: 'warn', message, time: now });
    this.setState('restarting');
    return { action: CloseAction.Restart, handled: true };
  }

  private setState(state: DispatcherState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.stateEmitter.fire(state);
  }
}

/** A command needed the dispatcher while it is down; the message says why and what happens next. */
export class DispatcherUnavailable extends Error {
  constructor(readonly state: DispatcherState) {
    super(
      state === 'restarting' || state === 'starting'
        ? 'The Octask dispatcher is restarting; try again in a moment.'
        : state === 'failed'
          ? 'The Octask dispatcher is not running (see the log); run "Octask: Restart Dispatcher".'
          : 'The Octask dispatcher is not running: it starts once there is a cluster key and the workspace is trusted.',
    );
  }
}
