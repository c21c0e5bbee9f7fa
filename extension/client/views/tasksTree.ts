import * as vscode from 'vscode';
import type { TaskInfo } from '../../../shared/rpc';
import type { ClusterModel } from '../clusterModel';
import type { RowTone } from '../format';
import {
  TASK_STATUS_ICON,
  formatDuration,
  runDescription,
  runStatus,
  taskDescription,
  taskFailed,
  taskPlace,
} from '../format';

/** A run (what one submit made) or one of its tasks (a shard, or one agent of `all`). */
export type TaskNode =
  | { kind: 'run'; group: string; tasks: TaskInfo[] }
  | { kind: 'task'; task: TaskInfo; label?: string };

const STATUS_TONE: Record<TaskInfo['status'], RowTone> = {
  pending: 'plain',
  running: 'plain',
  completed: 'ok',
  failed: 'bad',
  timed_out: 'bad',
  lost: 'bad',
  cancelled: 'off',
};

/** Theme colours for a row's tone, as the Testing view colours its results. */
export function toneColor(tone: RowTone): vscode.ThemeColor | undefined {
  switch (tone) {
    case 'ok':
      return new vscode.ThemeColor('testing.iconPassed');
    case 'bad':
      return new vscode.ThemeColor('testing.iconFailed');
    case 'warn':
      return new vscode.ThemeColor('list.warningForeground');
    case 'off':
      return new vscode.ThemeColor('disabledForeground');
    case 'plain':
      return undefined;
  }
}

function statusIcon(status: TaskInfo['status']): vscode.ThemeIcon {
  return new vscode.ThemeIcon(TASK_STATUS_ICON[status], toneColor(STATUS_TONE[status]));
}

/** The context value a row's menus key on: `task.active|finished`, `.failed` when it failed. */
function contextOf(status: TaskInfo['status'], failed: boolean): string {
  return `task.${status === 'pending' || status === 'running' ? 'active' : 'finished'}${failed ? '.failed' : ''}`;
}

/** A task as a tree item: its label, where and how it ran; a click shows its output. */
export function taskItem(task: TaskInfo, description: string, label?: string): vscode.TreeItem {
  const item = new vscode.TreeItem(label ?? task.command, vscode.TreeItemCollapsibleState.None);
  item.id = `task:${task.id}`;
  item.description = description;
  item.iconPath = statusIcon(task.status);
  item.contextValue = contextOf(task.status, taskFailed(task));
  item.command = { command: 'octask.showTaskOutput', title: 'Show Output', arguments: [task.id] };
  const lines = [
    task.command,
    `status: ${task.status.replace('_', ' ')}${task.exitCode !== null ? ` (exit ${task.exitCode})` : ''}`,
    `agent: ${task.agent ?? '—'}${task.shardCount > 1 ? `, shard ${task.shard} of ${task.shardCount}` : ''}`,
    `attempts: ${task.attempts}`,
  ];
  if (task.durationMs !== null) lines.push(`took ${formatDuration(task.durationMs)}`);
  if (task.error) lines.push(`${task.error.code}: ${task.error.message}`);
  item.tooltip = lines.join('\n');
  return item;
}

/**
 * The Tasks view, in the manner of the Testing view: one row per run,
 * labelled by its task label or its command, with its shards or agents
 * under it; running first, then queued, then the newest finished.
 */
export class TasksTree implements vscode.TreeDataProvider<TaskNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subs: Array<{ dispose(): void }>;
  private ticker: NodeJS.Timeout | undefined;

  constructor(private readonly model: ClusterModel) {
    this.subs = [
      model.onTask.on(() => this.update()),
      model.onTasksRemoved.on(() => this.update()),
    ];
  }

  getChildren(node?: TaskNode): TaskNode[] {
    if (!node) {
      return this.model.runList().map(({ group, tasks }) => {
        const only = tasks.length === 1 ? tasks[0] : undefined;
        const label = this.model.labelOf(group, tasks[0]?.command ?? '');
        return only ? { kind: 'task', task: only, label } : { kind: 'run', group, tasks };
      });
    }
    if (node.kind !== 'run') return [];
    return node.tasks.map((task) => ({ kind: 'task', task, label: taskPlace(task) }));
  }

  getTreeItem(node: TaskNode): vscode.TreeItem {
    if (node.kind === 'task') {
      // A shard under its run is named by where it ran; its description says how.
      const under = node.label === taskPlace(node.task);
      const description = under
        ? taskDescription(node.task).split(' · ').slice(1).join(' · ')
        : taskDescription(node.task);
      return taskItem(node.task, description, node.label);
    }
    const first = node.tasks[0] as TaskInfo;
    const status = runStatus(node.tasks);
    const label = this.model.labelOf(node.group, first.command);
    const item = new vscode.TreeItem(
      label,
      status === 'running' || status === 'pending' || node.tasks.some(taskFailed)
        ? vscode.TreeItemCollapsibleState.Expanded
        : vscode.TreeItemCollapsibleState.Collapsed,
    );
    item.id = `run:${node.group}`;
    item.description = runDescription(node.tasks);
    item.iconPath = statusIcon(status);
    item.contextValue = `run.${status === 'running' || status === 'pending' ? 'active' : 'finished'}${node.tasks.some(taskFailed) ? '.failed' : ''}`;
    item.tooltip = `${first.command}\n${runDescription(node.tasks)}`;
    return item;
  }

  private update(): void {
    this.changed.fire(undefined);
    // Running tasks show a growing duration: tick once a second while any runs.
    const running = [...this.model.tasks.values()].some((t) => t.status === 'running');
    if (running && !this.ticker) this.ticker = setInterval(() => this.tick(), 1000);
    if (!running && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = undefined;
    }
  }

  private tick(): void {
    if (![...this.model.tasks.values()].some((t) => t.status === 'running')) return this.update();
    this.changed.fire(undefined);
  }

  dispose(): void {
    if (this.ticker) clearInterval(this.ticker);
    for (const s of this.subs) s.dispose();
    this.changed.dispose();
  }
}
