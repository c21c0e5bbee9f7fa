import * as vscode from 'vscode';

/** The extension's settings, read in one place (see package.json's configuration). */
export interface OctaskSettings {
  agents: string[];
  discovery: boolean;
  defaultTarget: string;
  nodePath: string | undefined;
  sync: boolean;
  /** Milliseconds an agent's link may be down before its tasks run elsewhere. */
  lostAfterMs: number;
}

export function readSettings(): OctaskSettings {
  const c = vscode.workspace.getConfiguration('octask');
  const agents = c.get<unknown>('agents');
  return {
    agents: Array.isArray(agents)
      ? agents.filter((a): a is string => typeof a === 'string' && a.trim() !== '')
      : [],
    discovery: c.get<boolean>('discovery.enabled', true),
    defaultTarget: c.get<string>('defaultTarget', 'any') || 'any',
    nodePath: c.get<string>('dispatcher.nodePath') || undefined,
    sync: c.get<boolean>('sync.enabled', true),
    lostAfterMs: Math.round(Math.max(0, c.get<number>('lostAfter', 60)) * 1000),
  };
}

/** Adds or removes an address in `octask.agents`, at the level where the list is set. */
export async function updateListedAgents(change: (list: string[]) => string[]): Promise<void> {
  const c = vscode.workspace.getConfiguration('octask');
  const inspect = c.inspect<string[]>('agents');
  const target =
    inspect?.workspaceFolderValue !== undefined
      ? vscode.ConfigurationTarget.WorkspaceFolder
      : inspect?.workspaceValue !== undefined
        ? vscode.ConfigurationTarget.Workspace
        : vscode.ConfigurationTarget.Global;
  const current =
    (target === vscode.ConfigurationTarget.Global
      ? inspect?.globalValue
      : target === vscode.ConfigurationTarget.Workspace
        ? inspect?.workspaceValue
        : inspect?.workspaceFolderValue) ?? [];
  await c.update('agents', change([...current]), target);
}
