import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as vscode from 'vscode';
import type { OctaskApi } from '../../../extension/client/extension';
import { ui } from './driver';

/** Dispatchers started by this window: vscode-languageclient passes the extension host's pid. */
function myDispatchers(): string {
  try {
    return execFileSync(
      'pgrep',
      ['-f', `octask.js dispatcher --stdio --clientProcessId=${process.pid}`],
      {
        encoding: 'utf8',
      },
    ).trim();
  } catch {
    return ''; // pgrep exits 1 when nothing matches
  }
}

describe('Octask in an untrusted workspace (Restricted Mode)', function () {
  this.timeout(60_000);
  let api: OctaskApi;

  before(async () => {
    assert.equal(vscode.workspace.isTrusted, false, 'the workspace opened in Restricted Mode');
    const ext = vscode.extensions.getExtension<OctaskApi>('octask.octask');
    assert.ok(ext, 'the extension is installed');
    api = await ext.activate();
  });

  it('activates, but starts no dispatcher even with a key, and says why in the view', async () => {
    const key = 'ab'.repeat(32);
    await vscode.commands.executeCommand('octask.setClusterKey', key);
    assert.equal(api.client.state, 'stopped');
    assert.equal(myDispatchers(), '', 'no dispatcher process');
    await ui.openView('Octask');
    await ui.screenshot('untrusted');
  });

  it('runs nothing: Run on cluster and Start Local Agent refuse', async () => {
    await vscode.commands.executeCommand('octask.runOnCluster');
    await vscode.commands.executeCommand('octask.startLocalAgent');
    assert.equal(api.model.tasks.size, 0);
    assert.equal(api.model.agents.size, 0);
    assert.equal(myDispatchers(), '', 'still no dispatcher process');
  });
});
