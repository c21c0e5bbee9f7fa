import { chmod, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { deriveAgentKey, isPairingId, pairLine, pasteLine } from '../../shared/clusterKey';
import type { TaskInfo, TaskSpec } from '../../shared/rpc';
import { showBlocked } from './blocked';
import { isFinished } from './clusterModel';
import type { ClusterKeyStore } from './clusterKeyStore';
import { machineKeyFile } from './clusterKeyStore';
import type { DiagnosisDocument } from './diagnose';
import { diagnoseReport } from './diagnose';
import { DispatcherUnavailable } from './dispatcherClient';
import { taskDescription, taskFailed } from './format';
import { keyFromPastedText } from './keyInput';
import type { LocalAgent } from './localAgent';
import type { OutputDocuments } from './outputDocuments';
import { runOnCluster } from './runOnCluster';
import { readSettings, updateListedAgents } from './settings';
import { rerunTask } from './taskProvider';
import type { TaskTerminalDeps } from './taskTerminal';
import type { TaskNode } from './views/tasksTree';
import type { WorkerNode } from './views/workersTree';

export interface CommandDeps extends TaskTerminalDeps {
  context: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  keys: ClusterKeyStore;
  outputs: OutputDocuments;
  diagnosis: DiagnosisDocument;
  localAgent: LocalAgent;
  /** Starts the dispatcher if it can (trusted, keyed) and is not running. */
  startDispatcher(): Promise<void>;
}

/** A tree node or a task id, as commands receive them from views, menus and tests. */
type TaskArg = string | TaskInfo | WorkerNode | TaskNode | undefined;

function taskIdOf(arg: TaskArg): string | undefined {
  if (typeof arg === 'string') return arg;
  if (!arg) return undefined;
  if ('kind' in arg)
    return arg.kind === 'task' ? arg.task.id : arg.kind === 'run' ? arg.tasks[0]?.id : undefined;
  return arg.id;
}

/** The tasks a menu item acts on: a run row means all of its tasks. */
function tasksOf(arg: TaskArg, model: CommandDeps['model']): TaskInfo[] {
  if (arg && typeof arg === 'object' && 'kind' in arg && arg.kind === 'run') return arg.tasks;
  const id = taskIdOf(arg);
  const task = id ? model.tasks.get(id) : undefined;
  return task ? [task] : [];
}

/** An agent's address from a Workers row or as given. */
function addressOf(arg: WorkerNode | string | undefined): string | undefined {
  return typeof arg === 'string' ? arg : arg?.kind === 'agent' ? arg.agent.address : undefined;
}

/**
 * Tells the user what they can act on, with the action attached; the rest goes
 * to the log. Not awaited: a command must not hang until a notification is closed.
 */
function report(deps: CommandDeps, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  deps.log.error(message);
  // The dispatcher being down is a wait, not a failure: a warning, with the log one click away.
  const show =
    err instanceof DispatcherUnavailable
      ? vscode.window.showWarningMessage
      : vscode.window.showErrorMessage;
  void show(`Octask: ${message.replace(/^Octask:\s*/, '')}`, 'Show Log').then((choice) => {
    if (choice === 'Show Log') deps.log.show();
  });
}

export function registerCommands(deps: CommandDeps): vscode.Disposable[] {
  const { model, client, context } = deps;
  const safe =
    <A extends unknown[]>(fn: (...args: A) => Promise<unknown>) =>
    async (...args: A): Promise<unknown> => {
      try {
        return await fn(...args);
      } catch (err) {
        report(deps, err);
        return undefined;
      }
    };
  const pickTask = async (
    filter: (t: TaskInfo) => boolean,
    title: string,
  ): Promise<string | undefined> => {
    const tasks = model.taskList().filter(filter);
    if (tasks.length === 0) {
      void vscode.window.showInformationMessage(`Octask: no task to ${title.toLowerCase()}.`);
      return undefined;
    }
    const pick = await vscode.window.showQuickPick(
      tasks.map((t) => ({ label: t.command, description: taskDescription(t), id: t.id })),
      { title: `Octask: ${title}` },
    );
    return pick?.id;
  };

  const register = (id: string, fn: (...args: never[]) => Promise<unknown>): vscode.Disposable =>
    vscode.commands.registerCommand(id, safe(fn));

  return [
    register('octask.runOnCluster', async () => {
      const blocked = deps.blockedBy();
      // Said before asking anything: no command typed in vain, no wait for a dispatcher that cannot start.
      if (blocked) return void showBlocked(blocked);
      await runOnCluster(deps, model, context.workspaceState);
    }),
    register('octask.cancelTask', async (arg: TaskArg) => {
      const active = tasksOf(arg, model).filter((t) => !isFinished(t));
      if (active.length > 1) {
        const found = await Promise.all(active.map((t) => client.cancel(t.id)));
        return found.some(Boolean);
      }
      const id =
        active[0]?.id ?? taskIdOf(arg) ?? (await pickTask((t) => !isFinished(t), 'Cancel Task'));
      if (!id) return false;
      return client.cancel(id);
    }),
    register('octask.rerunTask', async (arg: TaskArg) => {
      const id = taskIdOf(arg) ?? (await pickTask(isFinished, 'Rerun Task'));
      if (!id) return undefined;
      const task = model.tasks.get(id);
      const spec = task ? model.specs.get(task.group) : undefined;
      if (!task || !spec) throw new Error('Octask no longer knows how that task was started.');
      return runAgain(deps, spec, model.labelOf(task.group, task.command));
    }),
    register('octask.rerunFailed', async (arg: TaskArg) => {
      const failed = (arg ? tasksOf(arg, model) : latestRuns(model)).filter(taskFailed);
      const groups = [...new Set(failed.map((t) => t.group))];
      if (groups.length === 0) {
        void vscode.window.showInformationMessage('Octask: no failed run to rerun.');
        return [];
      }
      const ids: string[] = [];
      for (const group of groups) {
        const spec = model.specs.get(group);
        const first = failed.find((t) => t.group === group) as TaskInfo;
        if (!spec) continue;
        ids.push(
          ...(await runAgain(
            deps,
            onlyFailed(
              spec,
              failed.filter((t) => t.group === group),
            ),
            model.labelOf(group, first.command),
          )),
        );
      }
      return ids;
    }),
    register('octask.clearFinished', async () => model.clearFinished()),
    register('octask.showTaskOutput', async (arg: TaskArg) => {
      const id = taskIdOf(arg) ?? (await pickTask(() => true, 'Show Task Output'));
      if (id) await deps.outputs.show(id);
    }),
    register('octask.addAgent', async (address?: string) => {
      const value =
        address ??
        (await vscode.window.showInputBox({
          title: 'Octask: Add Agent by Address',
          prompt: 'host:port of a machine running octask-agent (the port defaults to 7879)',
          placeHolder: '192.168.1.20:7879',
          validateInput: (v) => (/^\S+$/.test(v.trim()) ? undefined : 'host or host:port'),
        }));
      if (!value?.trim()) return;
      const addr = value.trim();
      await updateListedAgents((list) => (list.includes(addr) ? list : [...list, addr]));
      // The settings watcher dials it; the Workers view shows whether it comes online.
      deps.log.info(`added agent ${addr} to octask.agents`);
    }),
    register('octask.removeAgent', async (arg?: WorkerNode | string) => {
      let address = addressOf(arg);
      if (!address) {
        const listed = readSettings().agents;
        address = await vscode.window.showQuickPick(listed, { title: 'Octask: Remove Agent' });
      }
      if (!address) return;
      const addr = address;
      await updateListedAgents((list) => list.filter((a) => a !== addr));
      if (client.ready()) await client.removeAgent(addr);
    }),
    register('octask.reconnectAgent', async (arg?: WorkerNode | string) => {
      const address = addressOf(arg);
      if (!address) return false;
      const known = await client.reconnectAgent(address);
      if (!known) deps.log.info(`the dispatcher does not know ${address}: nothing to reconnect`);
      return known;
    }),
    register('octask.copyAgentAddress', async (arg?: WorkerNode | string) => {
      const address = addressOf(arg);
      if (address) await vscode.env.clipboard.writeText(address);
      return address;
    }),
    register('octask.showAgentEvents', async (arg?: WorkerNode | string) => {
      const agent = arg && typeof arg === 'object' && arg.kind === 'agent' ? arg.agent : undefined;
      const address = addressOf(arg);
      if (!address) return [];
      const names = [address, agent?.name, agent?.id].filter((n): n is string => !!n);
      const events = model.log
        .filter((e) =>
          names.some((n) => e.message.includes(n) || JSON.stringify(e.fields ?? {}).includes(n)),
        )
        .reverse();
      const items = events.map((e) => ({
        label: e.message,
        description: new Date(e.time).toLocaleTimeString(),
        detail: e.fields ? JSON.stringify(e.fields) : undefined,
      }));
      if (items.length === 0)
        items.push({
          label: `No events about ${agent?.name ?? address} yet`,
          description: '',
          detail: undefined,
        });
      void vscode.window.showQuickPick(items, {
        title: `Octask: events of ${agent?.name ?? address}`,
      });
      return events.map((e) => e.message);
    }),
    register('octask.saveAgentFile', async (folder?: string) => {
      const target =
        folder ??
        (
          await vscode.window.showOpenDialog({
            title: 'Octask: Save the Agent to a Folder',
            canSelectFiles: false,
            canSelectFolders: true,
            openLabel: 'Save octask-agent.js here',
          })
        )?.[0]?.fsPath;
      if (!target) return undefined;
      const file = join(target, 'octask-agent.js');
      await copyFile(context.asAbsolutePath('dist/octask-agent.js'), file);
      await chmod(file, 0o755);
      const line = 'node octask-agent.js';
      deps.log.info(`saved the agent to ${file}`);
      void vscode.commands.executeCommand('setContext', 'octask.agentSaved', true);
      void vscode.window
        .showInformationMessage(
          `Saved ${file}. Copy it to the device and run there: ${line}`,
          'Copy the Line',
        )
        .then((choice) => {
          if (choice === 'Copy the Line') void vscode.env.clipboard.writeText(line);
        });
      return file;
    }),
    register('octask.setClusterKey', async (given?: string) => {
      if (given) {
        const found = keyFromPastedText(given);
        if (!found.hex) throw new Error(found.error);
        return (await deps.keys.set(found.hex)).key.id;
      }
      return setKeyInteractively(deps);
    }),
    register('octask.pairDevice', async (given?: string) => {
      const cluster = deps.keys.current ?? (await deps.keys.load());
      if (!cluster) throw new Error('Set a cluster key first (Octask: Set Cluster Key).');
      const name =
        given ??
        (await vscode.window.showInputBox({
          title: 'Pair a device',
          prompt: 'The name the agent on that device will have (its pairing)',
          placeHolder: 'pi',
          validateInput: (v) =>
            isPairingId(v.trim()) ? undefined : 'Use 1 to 63 of A-Z a-z 0-9 _ -',
        }));
      if (!name) return undefined;
      // The device gets a key derived for it alone: it reaches no other agent.
      const line = pairLine(deriveAgentKey(cluster.key, name.trim()));
      if (given === undefined)
        void vscode.window
          .showInformationMessage(
            `Run this line on ${name.trim()}, then (re)start octask-agent there. It holds a key for that device only.`,
            { detail: line, modal: false },
            'Copy the Line',
          )
          .then((choice) => {
            if (choice === 'Copy the Line') void vscode.env.clipboard.writeText(line);
          });
      return line;
    }),
    register('octask.startLocalAgent', async () => {
      if (!vscode.workspace.isTrusted)
        throw new Error('Octask runs nothing in an untrusted workspace.');
      let key = deps.keys.current ?? (await deps.keys.load());
      if (!key) {
        key = await deps.keys.generate();
        void vscode.window.showInformationMessage(
          `Octask made a new cluster key (id ${key.key.id}). Use "Octask: Set Cluster Key" to copy it to other machines.`,
        );
      }
      await deps.startDispatcher();
      const agent = await deps.localAgent.start(key.key, readSettings().nodePath);
      if (client.ready()) model.agentAdded(await client.addAgent(agent.address));
      return agent.address;
    }),
    register('octask.stopLocalAgent', async () => {
      const running = deps.localAgent.running;
      // Removed before it stops: a deliberate stop is one removal, not an agent lost.
      if (running && client.ready()) await client.removeAgent(running.address);
      await deps.localAgent.stop();
    }),
    register('octask.diagnose', async () => {
      const text = await diagnoseReport(client, model, deps.keys.current);
      deps.log.info(text);
      await deps.diagnosis.show(text);
      return text;
    }),
    register('octask.showLog', async () => deps.log.show()),
    register('octask.restartDispatcher', async () => {
      await client.stop();
      await deps.startDispatcher();
    }),
    register('octask.installAgentGuide', async () =>
      vscode.commands.executeCommand(
        'workbench.action.openWalkthrough',
        `${context.extension.id}#octask.gettingStarted`,
        false,
      ),
    ),
  ];
}

/**
 * Runs a spec again in a terminal of its own, as the first run had; resolves
 * with the new tasks' ids once they are submitted (none if nothing was).
 */
async function runAgain(deps: CommandDeps, spec: TaskSpec, label: string): Promise<string[]> {
  const submitted = new Promise<TaskInfo[] | undefined>((resolve) => {
    void vscode.tasks
      .executeTask(rerunTask(spec, label, deps, resolve))
      .then(undefined, () => resolve(undefined));
  });
  return ((await submitted) ?? []).map((t) => t.id);
}

/** The tasks of the newest run of each label: what "Rerun Failed" looks at, as the Testing view does. */
function latestRuns(model: CommandDeps['model']): TaskInfo[] {
  const seen = new Set<string>();
  const tasks: TaskInfo[] = [];
  for (const run of model.runList().sort((a, b) => newest(b.tasks) - newest(a.tasks))) {
    const label = model.labelOf(run.group, run.tasks[0]?.command ?? '');
    if (seen.has(label)) continue;
    seen.add(label);
    // A label running again now is being rerun already.
    if (run.tasks.every(isFinished)) tasks.push(...run.tasks);
  }
  return tasks;
}

function newest(tasks: TaskInfo[]): number {
  return Math.max(...tasks.map((t) => t.queuedAt));
}

/** For a run on `all` agents, only the agents that failed; shards rerun whole (a shard is not addressable alone). */
function onlyFailed(spec: TaskSpec, failed: TaskInfo[]): TaskSpec {
  const agents = [...new Set(failed.map((t) => t.agent).filter((a): a is string => a !== null))];
  const only = agents[0];
  if (spec.target?.kind === 'all' && agents.length === 1 && only)
    return { ...spec, target: { kind: 'agent', name: only } };
  return spec;
}

async function setKeyInteractively(deps: CommandDeps): Promise<string | undefined> {
  const current = deps.keys.current;
  type Choice = vscode.QuickPickItem & { action: 'paste' | 'generate' | 'file' | 'copy' | 'clear' };
  const items: Choice[] = [
    {
      label: '$(key) Paste a key',
      description: 'the key, or the line an agent printed on its first start',
      action: 'paste',
    },
    {
      label: '$(add) Make a new key',
      description: 'then copy it to each agent',
      action: 'generate',
    },
    { label: "$(file) Use this machine's key file", description: machineKeyFile(), action: 'file' },
  ];
  if (current) {
    items.push(
      {
        label: '$(copy) Copy the line that installs this key on another device',
        description: `key id ${current.key.id}`,
        action: 'copy',
      },
      { label: '$(trash) Forget the stored key', action: 'clear' },
    );
  }
  const choice = await vscode.window.showQuickPick(items, {
    title: 'Octask: Set Cluster Key',
    placeHolder: current
      ? `Current key id ${current.key.id} (from ${current.source})`
      : 'No key yet',
  });
  switch (choice?.action) {
    case undefined:
      return undefined;
    case 'paste': {
      const text = await vscode.window.showInputBox({
        title: 'Octask: Set Cluster Key',
        prompt:
          "The key (64 hex digits), or the whole line an agent printed. It is kept in VS Code's secret storage.",
        password: true,
        ignoreFocusOut: true,
        validateInput: (v) => keyFromPastedText(v).error,
      });
      const hex = text ? keyFromPastedText(text).hex : undefined;
      if (!hex) return undefined;
      return (await deps.keys.set(hex)).key.id;
    }
    case 'generate': {
      const made = await deps.keys.generate();
      await vscode.env.clipboard.writeText(pasteLine(made.key));
      void vscode.window.showInformationMessage(
        `New cluster key ${made.key.id}. The line that installs it on another dispatcher machine is on the clipboard; give each agent device its own key with "octask key --pair NAME".`,
      );
      return made.key.id;
    }
    case 'file': {
      await deps.keys.clear();
      const loaded = deps.keys.current;
      if (!loaded)
        throw new Error(`${machineKeyFile()} holds no key; create one with "octask key --new"`);
      return loaded.key.id;
    }
    case 'copy':
      if (current) await vscode.env.clipboard.writeText(pasteLine(current.key));
      void vscode.window.showInformationMessage(
        "Copied: paste it in a shell on the agent's machine.",
      );
      return current?.key.id;
    case 'clear':
      await deps.keys.clear();
      return deps.keys.current?.key.id;
  }
}
