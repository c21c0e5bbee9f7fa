import * as vscode from 'vscode';
import type { AgentInfo, TaskInfo } from '../../../shared/rpc';
import { OCTASK_VERSION } from '../../../shared/version';
import type { ClusterModel } from '../clusterModel';
import {
  AGENT_STATUS_ICON,
  AGENT_STATUS_TONE,
  agentDescription,
  agentDetails,
  agentIsOutdated,
  taskDescription,
} from '../format';
import { taskItem, toneColor } from './tasksTree';

export type WorkerNode = { kind: 'agent'; agent: AgentInfo } | { kind: 'task'; task: TaskInfo };

/**
 * The Workers view: every agent found or listed, with its running tasks as
 * children. A row says status and slots in a few words; the tooltip the rest.
 */
export class WorkersTree implements vscode.TreeDataProvider<WorkerNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<WorkerNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subs: Array<{ dispose(): void }>;

  constructor(private readonly model: ClusterModel) {
    this.subs = [
      model.onAgents.on(() => this.changed.fire(undefined)),
      // Running tasks hang under their agent; refresh when one starts or ends.
      model.onTask.on(() => this.changed.fire(undefined)),
    ];
  }

  getChildren(node?: WorkerNode): WorkerNode[] {
    if (!node) {
      return [...this.model.agents.values()]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((agent) => ({ kind: 'agent', agent }));
    }
    if (node.kind !== 'agent') return [];
    return [...this.model.tasks.values()]
      .filter((t) => t.status === 'running' && t.agent === node.agent.name)
      .map((task) => ({ kind: 'task', task }));
  }

  getTreeItem(node: WorkerNode): vscode.TreeItem {
    if (node.kind === 'task') {
      const t = node.task;
      return taskItem(t, taskDescription(t), this.model.labelOf(t.group, t.command));
    }
    const a = node.agent;
    const hasTasks = a.running > 0;
    const item = new vscode.TreeItem(
      // `name (2)` where two agents share a name.
      a.label || a.name,
      hasTasks ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None,
    );
    item.id = `agent:${a.address}`;
    item.description = agentDescription(a, OCTASK_VERSION);
    const outdated = agentIsOutdated(a, OCTASK_VERSION);
    const tone =
      outdated && AGENT_STATUS_TONE[a.status] === 'ok' ? 'warn' : AGENT_STATUS_TONE[a.status];
    item.iconPath = new vscode.ThemeIcon(AGENT_STATUS_ICON[a.status], toneColor(tone));
    // `agent.listed.online`, `agent.mdns.offline`…: menus match on the parts they need.
    item.contextValue = `agent.${a.source}.${a.status}${outdated ? '.outdated' : ''}`;
    const tip = new vscode.MarkdownString();
    const [head, ...rest] = agentDetails(a, OCTASK_VERSION);
    tip.appendText(head ?? a.label);
    tip.appendMarkdown('\n\n');
    for (const line of rest) {
      tip.appendMarkdown('- ');
      tip.appendText(line);
      tip.appendMarkdown('\n');
    }
    item.tooltip = tip;
    return item;
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
    this.changed.dispose();
  }
}
