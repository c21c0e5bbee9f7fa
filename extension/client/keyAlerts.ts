import * as vscode from 'vscode';
import type { AgentInfo } from '../../shared/rpc';
import type { ClusterModel } from './clusterModel';

/**
 * Says once per cause that agents refuse this editor's key, with the
 * actions that fix it; before, a wrong key only showed as a row's status
 * while tasks waited. One cause is one key id: a new key may be wrong anew.
 */
export class KeyAlerts implements vscode.Disposable {
  private readonly told = new Set<string>();
  private readonly sub: { dispose(): void };

  constructor(
    private readonly model: ClusterModel,
    /** The key id in use, so a new key is a new cause. */
    private readonly keyId: () => string | undefined,
  ) {
    this.sub = model.onAgents.on((a) => {
      if (a?.status === 'wrong_key') this.refused(a);
    });
  }

  private refused(agent: AgentInfo): void {
    const cause = `wrong_key:${this.keyId() ?? ''}`;
    const who = agent.name === agent.address ? agent.address : `${agent.name} (${agent.address})`;
    const message = `${who} holds another cluster key than this editor's, so it cannot take work.`;
    this.model.applyLog({ level: 'warn', message, time: Date.now() });
    if (this.told.has(cause)) return;
    this.told.add(cause);
    void vscode.window
      .showWarningMessage(
        `Octask: ${message} Set the key your agents share, or see Diagnose.`,
        'Set Cluster Key',
        'Diagnose',
      )
      .then((choice) => {
        if (choice === 'Set Cluster Key')
          void vscode.commands.executeCommand('octask.setClusterKey');
        if (choice === 'Diagnose') void vscode.commands.executeCommand('octask.diagnose');
      });
  }

  dispose(): void {
    this.sub.dispose();
  }
}
