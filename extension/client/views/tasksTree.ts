import * as vscode from 'vscode';
import type { TaskInfo } from '../../../shared/rpc';
import type { ClusterModel } from '../clusterModel';
import { isFinished } from '../clusterModel';
import { TASK_STATUS_ICON, formatDuration, taskDescription } from '../format';

/** A task as a tree item: the command, where and how it ran; a click shows its output. */
export function taskItem(task: TaskInfo, description: string): vscode.TreeItem {
  const item = new vscode.TreeItem(task.command, vscode.TreeItemCollapsibleState.None);
  item.id = `task:${task.id}:${task.status}`;
  item.description = description;
  const color =
    task.status === 'completed'
      ? new vscode.ThemeColor('testing.iconPassed')
      : task.status === 'failed' || task.status === 'lost' || task.status === 'timed_out'
        ? new vscode.ThemeColor('testing.iconFailed')
        : undefined;
  item.iconPath = new vscode.ThemeIcon(TASK_STATUS_ICON[task.status], color);
  item.contextValue = isFinished(task) ? 'task.finished' : 'task.active';
  item.command = { command: 'octask.showTaskOutput', title: 'Show Output', arguments: [task.id] };
  const lines = [
    `${task.command}`,
    `status: ${task.status}${task.exitCode !== null ? ` (exit ${task.exitCode})` : ''}`,
    `agent: ${task.agent ?? '—'}${task.shardCount > 1 ? `, shard ${task.shard} of ${task.shardCount}` : ''}`,
    `attempts: ${task.attempts}`,
  ];
  if (task.durationMs !== null) lines.push(`took ${formatDuration(task.durationMs)}`);
  if (task.error) lines.push(`${task.error.code}: ${task.error.message}`);
  item.tooltip = lines.join('\n');
  return item;
}

/** The Tasks view: running, queued and recent tasks, newest first. */
export class TasksTree implements vscode.TreeDataProvider<TaskInfo>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subs: Array<{ dispose(): void }>;
  private ticker: NodeJS.Timeout | undefined;

  constructor(private readonly model: ClusterModel) {
    this.subs = [model.onTask.on(() => this.update())];
  }

  getChildren(node?: TaskInfo): TaskInfo[] {
    return node ? [] : this.model.taskList();
  }

  getTreeItem(task: TaskInfo): vscode.TreeItem {
    return taskItem(task, taskDescription(task));
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
