import { join } from 'node:path';
import * as vscode from 'vscode';
import { ClusterModel } from './clusterModel';
import { ClusterKeyStore } from './clusterKeyStore';
import { registerCommands } from './commands';
import { DIAGNOSIS_SCHEME, DiagnosisDocument } from './diagnose';
import { DispatcherClient } from './dispatcherClient';
import { KeyAlerts } from './keyAlerts';
import { LocalAgent } from './localAgent';
import { OUTPUT_SCHEME, OutputDocuments } from './outputDocuments';
import { readSettings } from './settings';
import { StatusBar } from './statusBar';
import type { ProgressHandle } from './syncProgress';
import { SyncProgressTracker } from './syncProgress';
import { OctaskTaskProvider, TASK_TYPE } from './taskProvider';
import { LogsTree } from './views/logsTree';
import { TasksTree } from './views/tasksTree';
import { WorkersTree } from './views/workersTree';

/** What `activate` returns: the extension's state, for its own end-to-end suite and other extensions. */
export interface OctaskApi {
  model: ClusterModel;
  client: DispatcherClient;
  views: { workers: WorkersTree; tasks: TasksTree; logs: LogsTree };
  /** The folder VS Code writes this extension's log channels to. */
  logFolder: vscode.Uri;
}

/**
 * Wires the pieces: the model fed by the dispatcher, the views that read it,
 * the commands and task provider that write through the dispatcher. Nothing
 * starts in an untrusted workspace: Octask runs the workspace's commands.
 */
export async function activate(context: vscode.ExtensionContext): Promise<OctaskApi> {
  const log = vscode.window.createOutputChannel('Octask', { log: true });
  const model = new ClusterModel();
  const keys = new ClusterKeyStore(context.secrets);
  const storage = context.globalStorageUri.fsPath;
  const listedNow = (): string[] => {
    const local = localAgent.running?.address;
    const listed = readSettings().agents;
    return local && !listed.includes(local) ? [...listed, local] : listed;
  };
  const client = new DispatcherClient(context.asAbsolutePath('dist/octask.js'), log, model, () => {
    const s = readSettings();
    const key = keys.current;
    if (!key) throw new Error('no cluster key');
    return {
      key: key.key.secret.toString('hex'),
      agents: listedNow(),
      mdns: s.discovery,
      nodePath: s.nodePath,
      lostAfterMs: s.lostAfterMs,
      // One journal per workspace (a window without a folder shares one).
      stateDir: join(
        context.storageUri?.fsPath ?? join(context.globalStorageUri.fsPath, 'no-workspace'),
        'dispatcher',
      ),
    };
  });
  const localAgent = new LocalAgent(
    context.asAbsolutePath('dist/octask-agent.js'),
    storage,
    log,
    (gone) => {
      if (client.ready()) client.removeAgent(gone.address).catch(() => undefined);
    },
  );
  const outputs = new OutputDocuments(model);
  const diagnosis = new DiagnosisDocument();
  const views = {
    workers: new WorkersTree(model),
    tasks: new TasksTree(model),
    logs: new LogsTree(model),
  };

  /** Why Octask is off, if it is. */
  const blockedBy = (): 'untrusted' | 'noKey' | undefined =>
    !vscode.workspace.isTrusted ? 'untrusted' : !keys.current ? 'noKey' : undefined;
  const statusBar = new StatusBar(model, client, blockedBy);
  const setContext = (key: string, value: unknown): void =>
    void vscode.commands.executeCommand('setContext', key, value);
  let ranTask = false;
  const updateContext = (): void => {
    setContext('octask.state', blockedBy() ?? client.state);
    setContext('octask.hasAgents', model.agents.size > 0);
    /*
     * The walkthrough's steps complete on these, not on their commands: a
     * step marked done as its command starts re-renders the walkthrough,
     * which takes focus from the command's own picker and input box.
     */
    setContext('octask.hasKey', keys.current !== undefined);
    statusBar.update();
  };

  // One start at a time: key, trust and settings events may all ask at once.
  let starting: Promise<void> | undefined;
  const startDispatcher = async (): Promise<void> => {
    updateContext();
    if (starting) return starting;
    const key = keys.current;
    if (!vscode.workspace.isTrusted || !key || client.state === 'running') return;
    log.info(`starting the dispatcher (key id ${key.key.id}, from ${key.source})`);
    starting = client.start().finally(() => (starting = undefined));
    return starting;
  };
  const restartDispatcher = async (why: string): Promise<void> => {
    await starting;
    log.info(`${why}: restarting the dispatcher`);
    // Its journal carries the tasks over: queued ones run once agents answer the new key.
    await client.stop(true);
    await startDispatcher();
  };

  // Loaded before anyone listens: the first key is a start, not a change.
  await keys.load();
  const syncProgress = new SyncProgressTracker(showProgress);
  context.subscriptions.push(
    syncProgress,
    { dispose: model.onSyncProgress.on((p) => syncProgress.progress(p)).dispose },
    { dispose: model.onSync.on((s) => syncProgress.synced(s)).dispose },
    log,
    keys,
    client,
    outputs,
    diagnosis,
    new KeyAlerts(model, () => keys.current?.key.id),
    views.workers,
    views.tasks,
    views.logs,
    { dispose: () => void localAgent.stop() },
    vscode.window.createTreeView('octask.workers', {
      treeDataProvider: views.workers,
      showCollapseAll: false,
    }),
    vscode.window.createTreeView('octask.tasks', { treeDataProvider: views.tasks }),
    vscode.window.createTreeView('octask.logs', { treeDataProvider: views.logs }),
    vscode.workspace.registerTextDocumentContentProvider(OUTPUT_SCHEME, outputs),
    vscode.workspace.registerTextDocumentContentProvider(DIAGNOSIS_SCHEME, diagnosis),
    vscode.tasks.registerTaskProvider(
      TASK_TYPE,
      new OctaskTaskProvider({ client, model, blockedBy }),
    ),
    statusBar,
    ...registerCommands({
      context,
      log,
      keys,
      outputs,
      diagnosis,
      localAgent,
      client,
      model,
      blockedBy,
      startDispatcher,
    }),
    client.onDidChangeState(updateContext),
    { dispose: model.onAgents.on(updateContext).dispose },
    {
      dispose: model.onTask.on(() => {
        if (!ranTask) void vscode.commands.executeCommand('setContext', 'octask.ranTask', true);
        ranTask = true;
      }).dispose,
    },
    keys.onDidChange(async (loaded) => {
      log.info(loaded ? `cluster key ${loaded.key.id} (from ${loaded.source})` : 'no cluster key');
      // Every connection is keyed: a new key means a new dispatcher.
      await restartDispatcher('the cluster key changed');
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      // The log said "not trusted" at activation; say what holds now.
      log.info(
        keys.current
          ? 'the workspace is trusted now'
          : `the workspace is trusted now; ${NO_KEY_LOG}`,
      );
      void startDispatcher();
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (
        e.affectsConfiguration('octask.discovery') ||
        e.affectsConfiguration('octask.dispatcher') ||
        e.affectsConfiguration('octask.lostAfter')
      ) {
        await restartDispatcher('discovery or dispatcher settings changed');
      } else if (e.affectsConfiguration('octask.agents')) {
        await syncListedAgents(client, model, listedNow(), log);
      }
    }),
  );

  updateContext();
  if (!vscode.workspace.isTrusted)
    log.info('this workspace is not trusted: Octask stays off until it is');
  else if (!keys.current)
    log.info(
      keys.fileProblem ? `the machine's key file is not used: ${keys.fileProblem}` : NO_KEY_LOG,
    );
  await startDispatcher();
  return { model, client, views, logFolder: context.logUri };
}

const NO_KEY_LOG =
  'no cluster key yet: set one with "Octask: Set Cluster Key" or start a local agent';

/** Dials newly listed agents and drops the ones taken off the list. */
async function syncListedAgents(
  client: DispatcherClient,
  model: ClusterModel,
  wanted: string[],
  log: vscode.LogOutputChannel,
): Promise<void> {
  if (!client.ready()) return;
  const have = [...model.agents.values()]
    .filter((a) => a.source === 'listed')
    .map((a) => a.address);
  for (const address of wanted) {
    if (have.includes(address)) continue;
    try {
      const agent = await client.addAgent(address);
      model.agentAdded(agent);
    } catch (err) {
      log.warn(`cannot add agent ${address}: ${(err as Error).message}`);
      void vscode.window.showWarningMessage(
        `Octask: cannot add agent ${address}: ${(err as Error).message}`,
      );
    }
  }
  for (const address of have) {
    if (!wanted.includes(address)) await client.removeAgent(address).catch(() => undefined);
  }
}

export function deactivate(): void {
  // Everything is in context.subscriptions; the dispatcher is stopped there.
}

/** A progress notification that stays until `done()`: a slow workspace sync, with files and bytes. */
function showProgress(title: string): ProgressHandle {
  let report: (message: string) => void = () => undefined;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  void vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title },
    (progress) => {
      report = (message) => progress.report({ message });
      return finished;
    },
  );
  return { report: (message) => report(message), done };
}
