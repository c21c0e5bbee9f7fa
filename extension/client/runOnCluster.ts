import * as vscode from 'vscode';
import type { ClusterModel } from './clusterModel';
import { readSettings } from './settings';
import { TASK_TYPE, clusterTask } from './taskProvider';
import type { TaskTerminalDeps } from './taskTerminal';

const LAST_COMMAND = 'octask.lastCommand';
const TITLE = 'Octask: Run on cluster';

interface CommandPick extends vscode.QuickPickItem {
  typed?: true;
  task?: vscode.Task;
}

interface TargetPick extends vscode.QuickPickItem {
  target: string;
  shards?: 'ask';
}

/**
 * The prompts of one run, shown one after another in the same place, never
 * closing in between. A quick input that closes hands focus back to where
 * the command started; from the walkthrough, that is the walkthrough's
 * button, which then took focus from the next prompt (and, with it hiding
 * on blur, closed it unseen).
 */
class Prompts implements vscode.Disposable {
  private current: vscode.QuickInput | undefined;

  /** Shows `next` in place of the current prompt, then resolves with what `accept` makes of it. */
  ask<R, T extends vscode.QuickPickItem>(
    next: vscode.QuickPick<T> | vscode.InputBox,
    accept: () => R | undefined,
  ): Promise<R | undefined> {
    next.ignoreFocusOut = true;
    const answer = new Promise<R | undefined>((resolve) => {
      const subs = [
        next.onDidAccept(() => {
          const value = accept();
          if (value === undefined) return;
          done();
          resolve(value);
        }),
        next.onDidHide(() => {
          done();
          resolve(undefined);
        }),
      ];
      const done = (): void => subs.forEach((s) => s.dispose());
    });
    const previous = this.current;
    this.current = next;
    // Shown before the previous one goes: the widget stays open, focus stays in it.
    next.show();
    previous?.dispose();
    return answer;
  }

  dispose(): void {
    this.current?.dispose();
    this.current = undefined;
  }
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
  const prompts = new Prompts();
  try {
    const picked = await pickCommand(prompts, memento);
    if (!picked) return;
    if (picked.task && picked.task.definition.type === TASK_TYPE) {
      prompts.dispose();
      // An octask task already says where it runs.
      await vscode.tasks.executeTask(picked.task);
      return;
    }
    const command = picked.typed ? await askCommand(prompts, memento) : commandLineOf(picked.task);
    if (!command) return;
    const where = await pickTarget(prompts, model);
    prompts.dispose();
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
  } finally {
    prompts.dispose();
  }
}

async function pickCommand(
  prompts: Prompts,
  memento: vscode.Memento,
): Promise<CommandPick | undefined> {
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
  const quick = vscode.window.createQuickPick<CommandPick>();
  quick.title = TITLE;
  quick.placeholder = 'Type a command, or pick a task from tasks.json';
  quick.matchOnDescription = true;
  quick.items = items;
  return prompts.ask(quick, () => quick.selectedItems[0]);
}

async function askCommand(prompts: Prompts, memento: vscode.Memento): Promise<string | undefined> {
  const box = vscode.window.createInputBox();
  box.title = TITLE;
  box.prompt = 'A shell command, run in the workspace copy on the agent';
  box.placeholder = 'npm test';
  box.value = memento.get<string>(LAST_COMMAND) ?? '';
  box.onDidChangeValue((v) => (box.validationMessage = v.trim() ? undefined : 'Type a command'));
  const command = await prompts.ask(box, () => box.value.trim() || undefined);
  if (command) await memento.update(LAST_COMMAND, command);
  return command;
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
  prompts: Prompts,
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
  quick.items = items;
  const preferred = items.find((i) => i.target === settings.defaultTarget && !i.shards);
  if (preferred) quick.activeItems = [preferred];
  const choice = await prompts.ask(quick, () => quick.selectedItems[0]);
  if (!choice) return undefined;
  if (!choice.shards) return { target: choice.target };
  const box = vscode.window.createInputBox();
  box.title = 'Octask: how many shards?';
  box.prompt = 'Each shard gets OCTASK_SHARD_INDEX and OCTASK_SHARD_COUNT';
  box.value = String(
    Math.max(
      2,
      agents.reduce((n, a) => n + a.maxJobs, 0),
    ),
  );
  const valid = (v: string): boolean => /^[1-9]\d*$/.test(v.trim());
  box.onDidChangeValue(
    (v) => (box.validationMessage = valid(v) ? undefined : 'A whole number, 1 or more'),
  );
  const text = await prompts.ask(box, () => (valid(box.value) ? box.value.trim() : undefined));
  return text ? { target: 'any', shards: Number(text) } : undefined;
}
