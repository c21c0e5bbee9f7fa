import * as vscode from 'vscode';
import type { TaskInfo, TaskSpec } from '../../shared/rpc';
import { readSettings } from './settings';
import type { OctaskTaskDefinition } from './taskDefinition';
import { specFromDefinition } from './taskDefinition';
import type { TaskTerminalDeps } from './taskTerminal';
import { RemoteTaskTerminal } from './taskTerminal';

export const TASK_TYPE = 'octask';

function folderOf(scope: vscode.Task['scope']): vscode.WorkspaceFolder | undefined {
  if (scope && typeof scope === 'object') return scope;
  return vscode.workspace.workspaceFolders?.[0];
}

/** Builds the runnable form of an `octask` task: a pseudoterminal that runs it on the cluster. */
export function clusterTask(
  definition: vscode.TaskDefinition,
  scope: vscode.Task['scope'],
  name: string,
  deps: TaskTerminalDeps,
  problemMatchers: string[] = [],
): vscode.Task {
  const execution = new vscode.CustomExecution(async (resolved) => {
    const settings = readSettings();
    const result = specFromDefinition(resolved, {
      defaultTarget: settings.defaultTarget,
      workspaceRoot: folderOf(scope)?.uri.fsPath,
      syncEnabled: settings.sync,
    });
    const spec: TaskSpec | { error: string } = result.spec ?? { error: result.error };
    return new RemoteTaskTerminal(spec, deps, name);
  });
  const task = new vscode.Task(
    definition,
    scope ?? vscode.TaskScope.Workspace,
    name,
    TASK_TYPE,
    execution,
    problemMatchers,
  );
  task.detail = `on the Octask cluster: ${String(definition.command)}`;
  return task;
}

/**
 * A task that runs a spec as it was submitted before (Rerun Task): in its own
 * terminal, as the first run was. `submitted` hears the new tasks, or
 * undefined when nothing was submitted.
 */
export function rerunTask(
  spec: TaskSpec,
  label: string,
  deps: TaskTerminalDeps,
  submitted: (tasks: TaskInfo[] | undefined) => void,
): vscode.Task {
  const execution = new vscode.CustomExecution(
    async () => new RemoteTaskTerminal(spec, deps, label, submitted),
  );
  const folder = vscode.workspace.workspaceFolders?.[0];
  const task = new vscode.Task(
    { type: TASK_TYPE, command: spec.command },
    folder ?? vscode.TaskScope.Workspace,
    label,
    TASK_TYPE,
    execution,
    [],
  );
  task.detail = `again on the Octask cluster: ${spec.command}`;
  return task;
}

/** Runs tasks.json's `octask` tasks; VS Code keeps their label, group and problem matchers. */
export class OctaskTaskProvider implements vscode.TaskProvider {
  constructor(private readonly deps: TaskTerminalDeps) {}

  provideTasks(): vscode.Task[] {
    // Nothing is auto-detected: octask tasks are the ones the user writes.
    return [];
  }

  resolveTask(task: vscode.Task): vscode.Task | undefined {
    const def = task.definition as Partial<OctaskTaskDefinition>;
    if (typeof def.command !== 'string') return undefined;
    return clusterTask(task.definition, task.scope, task.name, this.deps);
  }
}
