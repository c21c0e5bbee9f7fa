import * as vscode from 'vscode';
import type { ClusterModel } from './clusterModel';
import type { DispatcherClient } from './dispatcherClient';
import { statusBarText } from './format';

/** Agents online and tasks running; a click opens the Octask view. */
export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  private readonly subs: Array<{ dispose(): void }>;

  constructor(
    private readonly model: ClusterModel,
    private readonly client: DispatcherClient,
    /** Why Octask is off, if it is: an untrusted workspace, or no key yet. */
    private readonly blocked: () => 'untrusted' | 'noKey' | undefined,
  ) {
    this.item.name = 'Octask';
    this.item.command = 'workbench.view.extension.octask';
    const update = (): void => this.update();
    this.subs = [
      model.onAgents.on(update),
      model.onTask.on(update),
      client.onDidChangeState(update),
    ];
    this.update();
    this.item.show();
  }

  update(): void {
    const agents = [...this.model.agents.values()];
    const online = agents.filter((a) => a.status === 'online' || a.status === 'busy').length;
    const tasks = [...this.model.tasks.values()];
    const running = tasks.filter((t) => t.status === 'running').length;
    const queued = tasks.filter((t) => t.status === 'pending').length;
    const state = this.client.state;
    const blocked = this.blocked();
    if (blocked === 'untrusted') {
      this.item.text = '$(shield) Octask: off';
      this.item.tooltip = 'Octask runs nothing in an untrusted workspace';
    } else if (blocked === 'noKey') {
      this.item.text = '$(key) Octask: no key';
      this.item.tooltip = 'Octask needs the cluster key: click to open the Octask view';
    } else if (state === 'restarting' || state === 'starting') {
      this.item.text = '$(loading~spin) Octask';
      this.item.tooltip = 'The Octask dispatcher is starting';
    } else if (state === 'failed') {
      this.item.text = '$(warning) Octask';
      this.item.tooltip = `The Octask dispatcher is not running: ${this.client.lastError ?? ''}`;
    } else {
      this.item.text = statusBarText(online, running, queued);
      this.item.tooltip = `Octask: ${online} agent${online === 1 ? '' : 's'} online, ${running} task${running === 1 ? '' : 's'} running, ${queued} queued`;
    }
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
    this.item.dispose();
  }
}
