import * as vscode from 'vscode';
import type { LogEvent, TaskInfo } from '../../../shared/rpc';
import type { ClusterModel } from '../clusterModel';
import { TASK_STATUS_ICON, nameTasksIn, taskPlace } from '../format';

export type LogNode =
  | { kind: 'events' }
  | { kind: 'outputs' }
  | { kind: 'event'; event: LogEvent; index: number }
  | { kind: 'output'; task: TaskInfo };

const EVENTS_SHOWN = 200;
const LEVEL_ICON: Record<LogEvent['level'], string> = {
  debug: 'debug',
  info: 'info',
  warn: 'warning',
  error: 'error',
};

/**
 * The Logs view: the dispatcher's event log (agents joining and leaving,
 * tasks placed, retried, failed) and one entry per task with output; a
 * click opens that output in an editor that follows it live.
 */
export class LogsTree implements vscode.TreeDataProvider<LogNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<LogNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subs: Array<{ dispose(): void }>;
  private pending: NodeJS.Timeout | undefined;

  constructor(private readonly model: ClusterModel) {
    const soon = (): void => this.refreshSoon();
    this.subs = [model.onLog.on(soon), model.onTask.on(soon), model.onOutput.on(soon)];
  }

  getChildren(node?: LogNode): LogNode[] {
    if (!node) return [{ kind: 'events' }, { kind: 'outputs' }];
    if (node.kind === 'events') {
      const log = this.model.log;
      const from = Math.max(0, log.length - EVENTS_SHOWN);
      return log
        .slice(from)
        .map((event, i) => ({ kind: 'event' as const, event, index: from + i }))
        .reverse();
    }
    if (node.kind === 'outputs') {
      return this.model
        .taskList()
        .filter((t) => this.model.outputs.has(t.id))
        .map((task) => ({ kind: 'output', task }));
    }
    return [];
  }

  getTreeItem(node: LogNode): vscode.TreeItem {
    const Collapsed = vscode.TreeItemCollapsibleState;
    switch (node.kind) {
      case 'events': {
        const item = new vscode.TreeItem('Dispatcher events', Collapsed.Expanded);
        item.id = 'logs:events';
        item.description = `${this.model.log.length}`;
        item.iconPath = new vscode.ThemeIcon('list-unordered');
        return item;
      }
      case 'outputs': {
        const item = new vscode.TreeItem('Task output', Collapsed.Expanded);
        item.id = 'logs:outputs';
        item.iconPath = new vscode.ThemeIcon('output');
        return item;
      }
      case 'event': {
        const e = node.event;
        const item = new vscode.TreeItem(
          nameTasksIn(e.message, (id) => this.taskName(id)),
          Collapsed.None,
        );
        item.id = `logs:event:${node.index}`;
        item.description = new Date(e.time).toLocaleTimeString();
        item.iconPath = new vscode.ThemeIcon(LEVEL_ICON[e.level]);
        item.tooltip = `${e.level}: ${String(item.label)}${e.fields ? `\n${JSON.stringify(e.fields, null, 2)}` : ''}`;
        return item;
      }
      case 'output': {
        const t = node.task;
        const item = new vscode.TreeItem(this.model.labelOf(t.group, t.command), Collapsed.None);
        item.id = `logs:output:${t.id}`;
        item.description = taskPlace(t);
        item.iconPath = new vscode.ThemeIcon(TASK_STATUS_ICON[t.status]);
        item.contextValue = 'taskOutput';
        item.command = {
          command: 'octask.showTaskOutput',
          title: 'Show Output',
          arguments: [t.id],
        };
        return item;
      }
    }
  }

  /** `"label"`, with `#shard` for a shard: how the Tasks view names the task. */
  private taskName(id: string): string | undefined {
    const t = this.model.tasks.get(id);
    if (!t) return undefined;
    const shard = t.shardCount > 1 && t.shard !== null ? ` #${t.shard}` : '';
    return `"${this.model.labelOf(t.group, t.command)}"${shard}`;
  }

  /** Output arrives in bursts; redraw at most a few times a second. */
  private refreshSoon(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.changed.fire(undefined);
    }, 250);
  }

  dispose(): void {
    if (this.pending) clearTimeout(this.pending);
    for (const s of this.subs) s.dispose();
    this.changed.dispose();
  }
}
