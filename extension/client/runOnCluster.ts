import * as vscode from 'vscode';
import type { ClusterModel } from './clusterModel';
import { readSettings } from './settings';
import { TASK_TYPE, clusterTask } from './taskProvider';
import type { TaskTerminalDeps } from './taskTerminal';

const LAST_COMMAND = 'octask.lastCommand';

interface CommandPick extends vscode.QuickPickItem {
  typed?: true;
  task?: vscode.Task;
}

interface TargetPick extends vscode.QuickPickItem {
  target: string;
  shards?: 'ask';
}

/**
 * "Octask: Run on cluster": pick a task from tasks.json or type a command,
 * then where to run it; it runs as a VS Code task in its own terminal, so
 * output, Ctrl+C and the exit code work as for `octask` tasks in tasks.json.
 */
export async function runOnCluster(
  deps: TaskTerminalDeps,
  model: ClusterModel,
  memento: vscode.Memento,
): Promise<void> {
  const picked = await pickCommand(memento);
  if (!picked) return;
  if (picked.task && picked.task.definition.type === TASK_TYPE) {
    // An octask task already says where it runs.
    await vscode.tasks.executeTask(picked.task);
    return;
  }
  const command = picked.typed ? await askCommand(memento) : commandLineOf(picked.task);
  if (!command) return;
  const where = await pickTarget(model);
  if (!where) return;
  const definition = { type: TASK_TYPE, command, target: where.target, shards: where.shards };
  const folder = vscode.workspace.workspaceFolders?.[0];
  const task = clusterTask(
    definition,
    folder ?? vscode.TaskScope.Workspace,
    command,
    deps,
    picked.task?.problemMatchers ?? [],
  );
  await vscode.tasks.executeTask(task);
}

async function pickCommand(memento: vscode.Memento): Promise<CommandPick | undefined> {
  const items: CommandPick[] = [
    {
      label: '$(terminal) Type a command…',
      description: memento.get<string>(LAST_COMMAND) ?? '',
      typed: true,
    },
  ];
  let tasks: vscode.Task[] = [];
  try {
    tasks = await vscode.tasks.fetchTasks();
  } catch {
    // A broken tasks.json must not block typing a command.
  }
  const fromFile = tasks.filter(
    (t) =>
      t.definition.type === TASK_TYPE ||
      (t.source === 'Workspace' && commandLineOf(t) !== undefined),
  );
  if (fromFile.length > 0) {
    items.push({ label: 'tasks.json', kind: vscode.QuickPickItemKind.Separator });
    for (const task of fromFile) {
      items.push({
        label: task.name,
        description:
          task.definition.type === TASK_TYPE ? 'octask task' : (commandLineOf(task) ?? ''),
        task,
      });
    }
  }
  return vscode.window.showQuickPick(items, {
    title: 'Octask: Run on cluster',
    placeHolder: 'Type a command, or pick a task from tasks.json',
    matchOnDescription: true,
    ignoreFocusOut: true,
  });
}

async function askCommand(memento: vscode.Memento): Promise<string | undefined> {
  const command = await vscode.window.showInputBox({
    title: 'Octask: Run on cluster',
    prompt: 'A shell command, run in the workspace copy on the agent',
    placeHolder: 'npm test',
    value: memento.get<string>(LAST_COMMAND) ?? '',
    ignoreFocusOut: true,
    validateInput: (v) => (v.trim() ? undefined : 'Type a command'),
  });
  if (command?.trim()) await memento.update(LAST_COMMAND, command.trim());
  return command?.trim() || undefined;
}

/** The command line of a shell or process task, as it would run in a shell. */
function commandLineOf(task: vscode.Task | undefined): string | undefined {
  const exec = task?.execution;
  if (exec instanceof vscode.ShellExecution) {
    if (exec.commandLine) return exec.commandLine;
    const cmd = typeof exec.command === 'string' ? exec.command : exec.command?.value;
    const args = (exec.args ?? []).map((a) => (typeof a === 'string' ? a : a.value));
    return cmd ? [cmd, ...args].join(' ') : undefined;
  }
  if (exec instanceof vscode.ProcessExecution) return [exec.process, ...exec.args].join(' ');
  return undefined;
}

async function pickTarget(
  model: ClusterModel,
): Promise<{ target: string; shards?: number } | undefined> {
  const settings = readSettings();
  const items: TargetPick[] = [
    { label: '$(server-process) Any agent', description: 'the least loaded', target: 'any' },
    { label: '$(layers) All agents', description: 'once on each online agent', target: 'all' },
    {
      label: '$(split-horizontal) Shards…',
      description: 'split into N tasks',
      target: 'any',
      shards: 'ask',
    },
  ];
  const agents = [...model.agents.values()].filter(
    (a) => a.status === 'online' || a.status === 'busy',
  );
  if (agents.length > 0)
    items.push({ label: 'agents', kind: vscode.QuickPickItemKind.Separator, target: '' });
  for (const a of agents) {
    items.push({
      label: `$(vm) ${a.name}`,
      description: `${a.os ?? ''}/${a.arch ?? ''} · ${a.running}/${a.maxJobs} slots`,
      target: a.name,
    });
  }
  const quick = vscode.window.createQuickPick<TargetPick>();
  quick.title = 'Octask: where to run it';
  /*
   * Started from the walkthrough, the walkthrough editor takes focus back as
   * the previous box closes; a quick pick that hid on blur then closed
   * unseen, and nothing ran.
   */
  quick.ignoreFocusOut = true;
  quick.items = items;
  const preferred = items.find((i) => i.target === settings.defaultTarget && !i.shards);
  if (preferred) quick.activeItems = [preferred];
  const choice = await new Promise<TargetPick | undefined>((resolve) => {
    quick.onDidAccept(() => resolve(quick.selectedItems[0]));
    quick.onDidHide(() => resolve(undefined));
    quick.show();
  });
  quick.dispose();
  if (!choice) return undefined;
  if (!choice.shards) return { target: choice.target };
  const text = await vscode.window.showInputBox({
    title: 'Octask: how many shards?',
    ignoreFocusOut: true,
    prompt: 'Each shard gets OCTASK_SHARD_INDEX and OCTASK_SHARD_COUNT',
    value: String(
      Math.max(
        2,
        agents.reduce((n, a) => n + a.maxJobs, 0),
      ),
    ),
    validateInput: (v) => (/^[1-9]\d*$/.test(v.trim()) ? undefined : 'A whole number, 1 or more'),
  });
  return text ? { target: 'any', shards: Number(text.trim()) } : undefined;
}
