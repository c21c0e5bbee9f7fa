import * as vscode from 'vscode';
import type { AgentInfo, TaskInfo } from '../../../shared/rpc';
import type { ClusterModel } from '../clusterModel';
import {
  AGENT_STATUS_ICON,
  AGENT_STATUS_LABEL,
  agentDescription,
  taskDescription,
} from '../format';
import { taskItem } from './tasksTree';

export type WorkerNode = { kind: 'agent'; agent: AgentInfo } | { kind: 'task'; task: TaskInfo };

/** The Workers view: every agent found or listed, with its running tasks as children. */
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
    if (node.kind === 'task') return taskItem(node.task, taskDescription(node.task));
    const a = node.agent;
    const hasTasks = a.running > 0;
    const item = new vscode.TreeItem(
      a.name,
      hasTasks ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None,
    );
    item.id = `agent:${a.address}`;
    item.description = agentDescription(a);
    item.iconPath = new vscode.ThemeIcon(AGENT_STATUS_ICON[a.status]);
    item.contextValue = `agent.${a.source}`;
    const tip = new vscode.MarkdownString();
    tip.appendMarkdown(`**${a.name}** — ${AGENT_STATUS_LABEL[a.status]}\n\n`);
    tip.appendMarkdown(
      `- address: \`${a.address}\` (${a.source === 'mdns' ? 'found by mDNS' : 'listed'})\n`,
    );
    if (a.os) tip.appendMarkdown(`- ${a.os}/${a.arch ?? '?'}, ${a.cpus ?? '?'} cpus\n`);
    if (a.version)
      tip.appendMarkdown(`- octask-agent ${a.version}, protocol ${a.protocol ?? '?'}\n`);
    tip.appendMarkdown(`- slots: ${a.running} of ${a.maxJobs} in use\n`);
    if (a.lastError) tip.appendMarkdown(`\n${a.lastError.code}: ${a.lastError.message}\n`);
    item.tooltip = tip;
    return item;
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
    this.changed.dispose();
  }
}
