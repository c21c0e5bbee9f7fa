import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as vscode from 'vscode';
import type { OctaskApi } from '../../../extension/client/extension';
import { poll } from './waitFor';

/**
 * The reload pass (run.js --reload): this file runs twice, once before the
 * window reloads and once after. The harness started one agent and put the
 * cluster key where the extension finds it; the phase file says which run
 * this is and which task to look for.
 */
const fixture = JSON.parse(process.env.OCTASK_E2E_RELOAD ?? '{}') as {
  address?: string;
  phaseFile?: string;
};
const TICKS = 30;
const COMMAND = `i=1; while [ $i -le ${TICKS} ]; do echo tick $i; i=$((i+1)); sleep 0.2; done`;

describe('Octask across a window reload', function () {
  this.timeout(90_000);

  it('a task running when the window reloads keeps running, and its output continues whole', async () => {
    assert.ok(
      fixture.address && fixture.phaseFile,
      'the harness passed its agent (OCTASK_E2E_RELOAD)',
    );
    const ext = vscode.extensions.getExtension<OctaskApi>('octask.octask');
    assert.ok(ext);
    const api = await ext.activate();
    if (!existsSync(fixture.phaseFile)) {
      // Before the reload: list the agent, start the task, and reload once it prints.
      await vscode.workspace
        .getConfiguration('octask')
        .update('agents', [fixture.address], vscode.ConfigurationTarget.Workspace);
      await poll(
        () => [...api.model.agents.values()].some((a) => a.status === 'online'),
        'the agent to be online',
      );
      const { tasks } = await api.client.submit({ command: COMMAND });
      const id = tasks[0]?.id;
      assert.ok(id);
      await poll(() => (api.model.outputs.get(id)?.text() ?? '').includes('tick 3'), 'tick 3');
      writeFileSync(fixture.phaseFile, JSON.stringify({ id }));
      await vscode.commands.executeCommand('workbench.action.reloadWindow');
      // The window goes away with this run; the next one checks the task.
      await new Promise(() => undefined);
    }
    const { id } = JSON.parse(readFileSync(fixture.phaseFile, 'utf8')) as { id: string };
    await poll(() => api.model.tasks.get(id), 'the task to be listed after the reload');
    assert.notEqual(api.model.tasks.get(id)?.status, 'lost', 'the reload must not lose the task');
    await poll(
      () => api.model.tasks.get(id)?.status === 'completed',
      'the task to complete',
      40_000,
    );
    const expected = Array.from({ length: TICKS }, (_, i) => `tick ${i + 1}\n`).join('');
    await poll(
      () => api.model.outputs.get(id)?.text() === expected,
      'the whole output',
      5_000,
    ).catch(() => assert.equal(api.model.outputs.get(id)?.text(), expected));
  });
});
