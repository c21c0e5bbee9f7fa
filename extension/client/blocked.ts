import * as vscode from 'vscode';

/** Why Octask runs nothing right now, when that is so: the one place both are decided is extension.ts. */
export type Blocked = 'untrusted' | 'noKey';

/** What the user reads, in a terminal or a notification. */
export function blockedMessage(why: Blocked): string {
  return why === 'noKey'
    ? 'Octask has no cluster key yet: set the key your agents share, or start a local agent (it makes one).'
    : 'Octask runs nothing in an untrusted workspace: trust it first.';
}

/**
 * Says at once why nothing can run, with the actions that fix it, instead of
 * waiting for a dispatcher that cannot start. Not awaited by callers.
 */
export async function showBlocked(why: Blocked): Promise<void> {
  const actions =
    why === 'noKey' ? ['Set Cluster Key', 'Start Local Agent'] : ['Manage Workspace Trust'];
  const choice = await vscode.window.showWarningMessage(blockedMessage(why), ...actions);
  const command =
    choice === 'Set Cluster Key'
      ? 'octask.setClusterKey'
      : choice === 'Start Local Agent'
        ? 'octask.startLocalAgent'
        : choice === 'Manage Workspace Trust'
          ? 'workbench.trust.manage'
          : undefined;
  if (command) await vscode.commands.executeCommand(command);
}
