import * as vscode from 'vscode';
import { pasteLine } from '../../shared/clusterKey';
import type { TaskInfo } from '../../shared/rpc';
import { isFinished } from './clusterModel';
import type { ClusterKeyStore } from './clusterKeyStore';
import { machineKeyFile } from './clusterKeyStore';
import { diagnoseReport } from './diagnose';
import { DispatcherUnavailable } from './dispatcherClient';
import { taskDescription } from './format';
import type { LocalAgent } from './localAgent';
import type { OutputDocuments } from './outputDocuments';
import { runOnCluster } from './runOnCluster';
import { readSettings, updateListedAgents } from './settings';
import type { TaskTerminalDeps } from './taskTerminal';
import type { WorkerNode } from './views/workersTree';

export interface CommandDeps extends TaskTerminalDeps {
  context: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  keys: ClusterKeyStore;
  outputs: OutputDocuments;
  localAgent: LocalAgent;
  /** Starts the dispatcher if it can (trusted, keyed) and is not running. */
  startDispatcher(): Promise<void>;
}

/** A tree node or a task id, as commands receive them from views, menus and tests. */
type TaskArg = string | TaskInfo | WorkerNode | undefined;

function taskIdOf(arg: TaskArg): string | undefined {
  if (typeof arg === 'string') return arg;
  if (!arg) return undefined;
  if ('kind' in arg) return arg.kind === 'task' ? arg.task.id : undefined;
  return arg.id;
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
      if (!vscode.workspace.isTrusted)
        throw new Error('Octask runs nothing in an untrusted workspace.');
      await runOnCluster(deps, model, context.workspaceState);
    }),
    register('octask.cancelTask', async (arg: TaskArg) => {
      const id = taskIdOf(arg) ?? (await pickTask((t) => !isFinished(t), 'Cancel Task'));
      if (!id) return false;
      return client.cancel(id);
    }),
    register('octask.rerunTask', async (arg: TaskArg) => {
      const id = taskIdOf(arg) ?? (await pickTask(isFinished, 'Rerun Task'));
      if (!id) return undefined;
      const task = model.tasks.get(id);
      const spec = task ? model.specs.get(task.group) : undefined;
      if (!spec) throw new Error('Octask no longer knows how that task was started.');
      const result = await client.submit(spec);
      return result.tasks.map((t) => t.id);
    }),
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
      let address =
        typeof arg === 'string' ? arg : arg?.kind === 'agent' ? arg.agent.address : undefined;
      if (!address) {
        const listed = readSettings().agents;
        address = await vscode.window.showQuickPick(listed, { title: 'Octask: Remove Agent' });
      }
      if (!address) return;
      const addr = address;
      await updateListedAgents((list) => list.filter((a) => a !== addr));
      if (client.ready()) await client.removeAgent(addr);
    }),
    register('octask.setClusterKey', async (given?: string) => {
      if (given) return (await deps.keys.set(given)).key.id;
      return setKeyInteractively(deps);
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
      if (client.ready()) await client.addAgent(agent.address);
      return agent.address;
    }),
    register('octask.stopLocalAgent', async () => {
      const running = deps.localAgent.running;
      await deps.localAgent.stop();
      if (running && client.ready()) await client.removeAgent(running.address);
    }),
    register('octask.diagnose', async () => {
      const text = await diagnoseReport(client, model, deps.keys.current);
      deps.log.info(text);
      const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: text });
      await vscode.window.showTextDocument(doc, { preview: false });
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

async function setKeyInteractively(deps: CommandDeps): Promise<string | undefined> {
  const current = deps.keys.current;
  type Choice = vscode.QuickPickItem & { action: 'paste' | 'generate' | 'file' | 'copy' | 'clear' };
  const items: Choice[] = [
    {
      label: '$(key) Paste a key',
      description: '64 hex digits, from an agent\'s first start or "octask key"',
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
        prompt: "The cluster key: 64 hex digits. It is kept in VS Code's secret storage.",
        password: true,
        ignoreFocusOut: true,
        validateInput: (v) =>
          /^\s*[0-9a-fA-F]{64}\s*$/.test(v) ? undefined : 'Expected 64 hex digits',
      });
      if (!text) return undefined;
      return (await deps.keys.set(text)).key.id;
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
