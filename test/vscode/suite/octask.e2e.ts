import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { OctaskApi } from '../../../extension/client/extension';
import type { ClusterKey } from '../../../shared/clusterKey';
import { pasteLine } from '../../../shared/clusterKey';
import { EXIT } from '../../../shared/exitCode';
import type { SyncInfo, TaskInfo } from '../../../shared/rpc';
import type { StartedAgent } from '../../helpers/agentProcess';
import { newKeyFile, startAgent, tempDir } from '../../helpers/agentProcess';
import { ui } from './driver';
import { poll, waitForModel } from './waitFor';

const EXTENSION_ID = 'octask.octask';

function workspaceRoot(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the test workspace is open');
  return folder.uri.fsPath;
}

async function octaskTask(label: string): Promise<vscode.Task> {
  const tasks = await vscode.tasks.fetchTasks({ type: 'octask' });
  const task = tasks.find((t) => t.name === label);
  assert.ok(task, `tasks.json has "${label}" (found: ${tasks.map((t) => t.name).join(', ')})`);
  return task;
}

/** Runs a task as VS Code's task system does and resolves with its exit code. */
async function runTask(task: vscode.Task): Promise<number | undefined> {
  const ended = new Promise<number | undefined>((resolve) => {
    const sub = vscode.tasks.onDidEndTaskProcess((e) => {
      if (e.execution.task.name !== task.name) return;
      sub.dispose();
      resolve(e.exitCode);
    });
  });
  await vscode.tasks.executeTask(task);
  return ended;
}

/**
 * Runs a tasks.json task the way "Tasks: Run Task" and keybindings do, by
 * label on the workbench side, where tasks.json's problem matchers apply
 * (a task object passed to executeTask from an extension carries none).
 */
async function runTaskByLabel(label: string): Promise<number | undefined> {
  await octaskTask(label);
  const ended = new Promise<number | undefined>((resolve) => {
    const sub = vscode.tasks.onDidEndTaskProcess((e) => {
      if (e.execution.task.name !== label) return;
      sub.dispose();
      resolve(e.exitCode);
    });
  });
  await vscode.commands.executeCommand('workbench.action.tasks.runTask', label);
  return ended;
}

function newestTask(api: OctaskApi, command: string): TaskInfo | undefined {
  return api.model.taskList().find((t) => t.command === command);
}

/** The text of the terminal panel once it shows `want` (xterm's DOM renderer: see settings.json). */
async function terminalText(want: RegExp): Promise<string> {
  const end = Date.now() + 15_000;
  let seen = '';
  while (Date.now() < end) {
    seen = await ui.textOf('.part.panel .terminal-wrapper.active .xterm-rows');
    if (want.test(seen)) return seen;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the terminal never showed ${String(want)}; it shows:\n${seen}`);
}

/** Resolves once VS Code's task `name` ends (its terminal closed). */
function nextTaskEnd(name: string): Promise<void> {
  return new Promise((resolve) => {
    const sub = vscode.tasks.onDidEndTaskProcess((e) => {
      if (e.execution.task.name !== name) return;
      sub.dispose();
      resolve();
    });
  });
}

/** Resolves with the name of the next task VS Code starts. */
function nextTaskStart(): Promise<string> {
  return new Promise((resolve) => {
    const sub = vscode.tasks.onDidStartTask((e) => {
      sub.dispose();
      resolve(e.execution.task.name);
    });
  });
}

const WORKERS_PANE = '.pane:has(.pane-header[aria-label^="Workers"]) .pane-body';
const TASKS_PANE = '.pane:has(.pane-header[aria-label^="Tasks"]) .pane-body';

/** Every button and link of the Workers welcome shows whole inside its pane (1400×900 window). */
async function assertWelcomeFits(): Promise<void> {
  const pane = WORKERS_PANE;
  const [body] = await ui.boxes(pane);
  assert.ok(body, 'the Workers pane is open');
  const actions = await ui.boxes(
    `${pane} .welcome-view-content a, ${pane} .welcome-view-content .monaco-button`,
  );
  assert.ok(actions.length >= 3, `the welcome offers its actions: ${JSON.stringify(actions)}`);
  for (const a of actions)
    assert.ok(
      a.bottom <= body.bottom + 1,
      `"${a.text}" is cut off at the bottom of the Workers pane`,
    );
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('Octask in VS Code', function () {
  this.timeout(90_000);
  let api: OctaskApi;
  let dir: { path: string; cleanup(): void } | undefined;
  const agents: StartedAgent[] = [];
  let clusterKey: ClusterKey | undefined;

  before(async () => {
    const ext = vscode.extensions.getExtension<OctaskApi>(EXTENSION_ID);
    assert.ok(ext, `extension ${EXTENSION_ID} is installed`);
    api = await ext.activate();
    dir = tempDir('octask-e2e-');
    const key = newKeyFile(dir.path);
    clusterKey = key.key;
    for (const name of ['desk', 'pi']) agents.push(await startAgent({ keyFile: key.path, name }));
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    dir?.cleanup();
  });

  // A failed test shows what the agents said last: the editor's own log is in test-results.
  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    for (const a of agents)
      for (const record of a.logs.slice(-25))
        console.log(`[agent ${a.name}] ${JSON.stringify(record)}`);
  });

  it('activates and, with no key yet, shows the welcome view', async () => {
    assert.equal(vscode.extensions.getExtension(EXTENSION_ID)?.isActive, true);
    const commands = await vscode.commands.getCommands(true);
    for (const id of [
      'octask.runOnCluster',
      'octask.setClusterKey',
      'octask.addAgent',
      'octask.diagnose',
    ])
      assert.ok(commands.includes(id), `${id} is registered`);
    assert.equal(api.client.state, 'stopped', 'no dispatcher without a key');
    await ui.openView('Octask');
    await ui.screenshot('welcome');
    await assertWelcomeFits();
  });

  it('with no key, Run on cluster says so at once, with Set Cluster Key and Start Local Agent', async () => {
    await ui.command('Octask: Run on cluster');
    const toast = await ui.textOf('.notification-toast');
    assert.match(toast, /no cluster key yet/, toast);
    assert.match(toast, /Set Cluster Key/, toast);
    assert.match(toast, /Start Local Agent/, toast);
    await ui.screenshot('no-key-run');
    await vscode.commands.executeCommand('notifications.clearAll');
    // A tasks.json task says it in its terminal and ends, rather than waiting for a dispatcher.
    const started = Date.now();
    assert.equal(await runTask(await octaskTask('remote ok')), EXIT.octaskFailure);
    assert.ok(Date.now() - started < 15_000, 'it ended without waiting out the dispatcher');
    const text = await terminalText(/no cluster key yet/);
    assert.doesNotMatch(text, /waiting for the dispatcher/);
    assert.equal(api.model.tasks.size, 0, 'nothing was submitted');
    await vscode.commands.executeCommand('notifications.clearAll');
  });

  it('a command needing the dispatcher explains instead of throwing while it is down', async () => {
    // Resolves (the command catches and tells the user), rather than rejecting.
    const result = await vscode.commands.executeCommand('octask.cancelTask', 'no-such-task');
    assert.equal(result, undefined);
    // The warning it showed would sit in every later screenshot.
    await vscode.commands.executeCommand('notifications.clearAll');
  });

  it('pairs by pasting the line an agent prints, and shows both agents in the Workers view', async () => {
    assert.ok(clusterKey);
    await ui.command('Octask: Set Cluster Key');
    await ui.pick('Paste a key');
    // The whole `mkdir … echo <key> > …/key` line, as an agent prints it on its first start.
    await ui.input(pasteLine(clusterKey));
    await poll(() => api.client.state === 'running', 'the dispatcher to run');
    assert.equal(
      await vscode.commands.executeCommand(
        'octask.setClusterKey',
        clusterKey.secret.toString('hex'),
      ),
      clusterKey.id,
    );
    for (const a of agents) await vscode.commands.executeCommand('octask.addAgent', a.address);
    const items = await waitForModel(
      api.model,
      () => {
        const nodes = api.views.workers.getChildren();
        const online = nodes.filter((n) => n.kind === 'agent' && n.agent.status === 'online');
        return online.length === 2 ? nodes : undefined;
      },
      'two agents online in the Workers view',
    );
    const labels = items
      .map((n) => api.views.workers.getTreeItem(n))
      .map((i) => `${String(i.label)} ${String(i.description)}`);
    // Short enough for the default side bar: name and slots; the rest is in the tooltip.
    assert.ok(
      labels.some((l) => /^desk 0\/\d+ slots$/.test(l)),
      labels.join('\n'),
    );
    assert.ok(
      labels.some((l) => /^pi 0\/\d+ slots$/.test(l)),
      labels.join('\n'),
    );
    const listed = vscode.workspace.getConfiguration('octask').get<string[]>('agents') ?? [];
    assert.deepEqual([...listed].sort(), agents.map((a) => a.address).sort());
    await ui.openView('Octask');
    await ui.screenshot('sidebar-workers');
  });

  it('"Octask: Run on cluster" with a typed command runs it; its output reaches the Logs view', async () => {
    const command = 'echo hello-from-the-palette; uname -s';
    await ui.command('Octask: Run on cluster');
    await ui.pick('Type a command');
    await ui.input(command);
    await ui.pick('Any agent');
    const task = await waitForModel(
      api.model,
      () => {
        const t = newestTask(api, command);
        return t && t.status !== 'pending' && t.status !== 'running' ? t : undefined;
      },
      'the typed command to finish',
    );
    assert.equal(task.status, 'completed');
    assert.ok(task.agent === 'desk' || task.agent === 'pi', `ran on ${task.agent}`);
    const logs = api.views.logs;
    const outputs = logs.getChildren({ kind: 'outputs' });
    const node = outputs.find((n) => n.kind === 'output' && n.task.id === task.id);
    assert.ok(node, 'the Logs view lists the task output');
    await vscode.commands.executeCommand('octask.showTaskOutput', task.id);
    const doc = await poll(
      () =>
        vscode.workspace.textDocuments.find(
          (d) => d.uri.scheme === 'octask-output' && d.getText().includes('hello-from-the-palette'),
        ),
      'the output document to show the output',
    );
    assert.match(doc.getText(), /Linux/);
    assert.match(doc.getText(), /\[completed, exit 0\]/);
    const events = logs
      .getChildren({ kind: 'events' })
      .map((n) => (n.kind === 'event' ? n.event.message : ''));
    assert.ok(
      events.some((m) => /desk|pi/.test(m)),
      `the event log names the agents: ${events.join(' | ')}`,
    );
    await ui.screenshot('run-on-cluster');
  });

  it("the walkthrough's Run on cluster button runs a typed command while the walkthrough has focus", async () => {
    await vscode.commands.executeCommand(
      'workbench.action.openWalkthrough',
      {
        category: `${EXTENSION_ID}#octask.gettingStarted`,
        step: `${EXTENSION_ID}#octask.gettingStarted#run`,
      },
      false,
    );
    await ui.click('.gettingStartedContainer .getting-started-step', 'Run a first task');
    await ui.screenshot('walkthrough-run');
    await ui.click('.gettingStartedContainer .monaco-button', 'Run on cluster');
    const command = 'echo from-the-walkthrough';
    await ui.pick('Type a command');
    // Typed and entered on the keyboard, as a person does, so focus moves as it does for them.
    // The command box, not the first picker (both are titled "Octask: Run on cluster").
    await poll(
      async () => /A shell command/.test(await ui.textOf('.quick-input-widget')),
      'the command box',
    );
    await ui.press('Control+a');
    await ui.type(command);
    await ui.press('Enter');
    await ui.pick('Any agent');
    const task = await waitForModel(
      api.model,
      () => {
        const t = newestTask(api, command);
        return t && t.status === 'completed' ? t : undefined;
      },
      'the command typed from the walkthrough to run',
    );
    assert.match(api.model.outputs.get(task.id)?.text() ?? '', /from-the-walkthrough/);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  it('an octask task from tasks.json ends with the remote exit code, 0 and non-zero', async () => {
    assert.equal(await runTask(await octaskTask('remote ok')), 0);
    const ok = newestTask(api, 'echo remote-ok from $OCTASK_AGENT_NAME');
    assert.equal(ok?.status, 'completed');
    assert.match(api.model.outputs.get(ok.id)?.text() ?? '', /remote-ok from (desk|pi)/);
    // Rerun, as the Tasks view's inline action does: the same spec, new tasks, in a terminal of
    // its own under the same label, as the first run had.
    const startedAgain = nextTaskStart();
    const again = await vscode.commands.executeCommand<string[]>('octask.rerunTask', ok.id);
    assert.equal(again?.length, 1);
    assert.equal(await startedAgain, 'remote ok');
    await waitForModel(
      api.model,
      () => api.model.tasks.get(again?.[0] ?? '')?.status === 'completed',
      'the rerun to complete',
    );
    assert.equal(await runTask(await octaskTask('remote fail')), 3);
  });

  it('a task that fails at once reads "terminated with exit code", not "failed to launch"', async () => {
    assert.equal(await runTask(await octaskTask('fast fail')), 7);
    const text = await terminalText(/exit code: 7/);
    assert.match(text, /terminated with exit code: 7/);
    assert.doesNotMatch(text, /failed to launch/);
    // Fastest of all: a definition refused before anything is sent ends within open().
    assert.equal(await runTask(await octaskTask('bad definition')), EXIT.usage);
    const refused = await terminalText(/exit code: 2/);
    assert.match(refused, /"shards" must be a whole number/);
    assert.match(refused, /terminated with exit code: 2/);
    assert.doesNotMatch(refused, /failed to launch/);
  });

  it('$tsc in a task with "cwd": "packages/app" links its problem to packages/app/src/index.ts', async () => {
    const file = vscode.Uri.file(join(workspaceRoot(), 'packages', 'app', 'src', 'index.ts'));
    assert.equal(await runTaskByLabel('app typecheck'), 2);
    const diagnostics = await poll(
      () => {
        const found = vscode.languages.getDiagnostics(file);
        return found.length > 0 ? found : undefined;
      },
      `a diagnostic on ${file.fsPath}`,
      10_000,
    );
    assert.match((diagnostics[0] as vscode.Diagnostic).message, /not assignable/);
    assert.equal((diagnostics[0] as vscode.Diagnostic).range.start.line, 1);
    const stray = vscode.languages
      .getDiagnostics()
      .filter(
        ([uri, d]) => d.length > 0 && uri.fsPath === join(workspaceRoot(), 'src', 'index.ts'),
      );
    assert.equal(stray.length, 0, 'nothing lands on <root>/src/index.ts, which does not exist');
    // Opening it from the Problems view opens the file, as a user would.
    await vscode.commands.executeCommand('workbench.actions.view.problems');
    await ui.click('.markers-panel .monaco-list-row', 'not assignable');
    await ui.press('Enter');
    await poll(
      () => vscode.window.activeTextEditor?.document.uri.fsPath === file.fsPath,
      `the Problems row to open ${file.fsPath} (active: ${vscode.window.activeTextEditor?.document.uri.fsPath})`,
      10_000,
    );
    await ui.screenshot('problem-in-subfolder');
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('Tasks groups a sharded run under its label; Rerun Failed and Clear Finished act on runs', async () => {
    await ui.command('Octask: Clear Finished');
    await poll(() => api.model.tasks.size === 0, 'Clear Finished to empty the Tasks view');
    assert.equal(api.views.tasks.getChildren().length, 0, 'no finished run is left');
    assert.equal(await runTaskByLabel('shards'), 1);
    const runs = () =>
      api.views.tasks
        .getChildren()
        .filter((n) => n.kind === 'run' && api.views.tasks.getTreeItem(n).label === 'shards');
    const [run] = runs();
    assert.ok(run && run.kind === 'run', 'the Tasks view has a run labelled "shards"');
    const item = api.views.tasks.getTreeItem(run);
    assert.match(String(item.description), /^3 shards · 2 passed, 1 failed · /);
    const shards = api.views.tasks.getChildren(run).map((n) => api.views.tasks.getTreeItem(n));
    assert.equal(shards.length, 3);
    assert.deepEqual(
      shards.map((s) => String(s.label).replace(/^\w+/, 'agent')),
      ['agent#0', 'agent#1', 'agent#2'],
    );
    assert.match(String(shards[1]?.description), /exit 1/);
    await ui.openView('Octask');
    // What the view draws, not only what the provider returns.
    await poll(
      async () => /3 shards · 2 passed, 1 failed/.test(await ui.textOf(TASKS_PANE)),
      'the Tasks view to draw the finished run',
      10_000,
    );
    await ui.screenshot('tasks-view');
    // Waited out in VS Code too: a task still closing is "already active" to VS Code.
    let ended = nextTaskEnd('shards');
    await ui.command('Octask: Rerun Failed');
    await ended;
    await waitForModel(
      api.model,
      () =>
        runs().length === 2 &&
        runs().every(
          (r) =>
            r.kind === 'run' &&
            r.tasks.every((t) => t.status !== 'running' && t.status !== 'pending'),
        ),
      'the failed run to run again and finish',
    );
    await ui.screenshot('workers-view');
    // Only the newest run of a label counts: a second Rerun Failed reruns the rerun, not both.
    const before = api.model.tasks.size;
    ended = nextTaskEnd('shards');
    const again = await vscode.commands.executeCommand<string[]>('octask.rerunFailed');
    await ended;
    assert.equal(again?.length, 3, 'the three shards of the newest "shards" run');
    await waitForModel(
      api.model,
      () =>
        [...api.model.tasks.values()].every(
          (t) => t.status !== 'running' && t.status !== 'pending',
        ),
      'the second rerun to finish',
    );
    assert.equal(api.model.tasks.size, before + 3);
  });

  it('a task with inputs and artifacts syncs only the inputs and brings its artifacts back', async () => {
    const result = join(workspaceRoot(), 'out', 'result.txt');
    assert.equal(existsSync(result), false);
    const synced = new Promise<SyncInfo>((resolve) => {
      const sub = api.model.onSync.on((s) => {
        sub.dispose();
        resolve(s);
      });
    });
    assert.equal(await runTask(await octaskTask('remote build')), 0);
    assert.match(readFileSync(result, 'utf8'), /^built on (desk|pi)\n$/);
    const sync = await synced;
    assert.equal(sync.root, workspaceRoot());
    assert.equal(sync.files, 1, `only src/app.js matches the inputs: ${JSON.stringify(sync)}`);
    assert.equal(sync.error, null);
  });

  it('a problem matcher turns a remote linter error into a diagnostic on the local file', async () => {
    // $eslint-stylish takes absolute paths: only the agent-to-local path mapping makes it match.
    const file = vscode.Uri.file(join(workspaceRoot(), 'src', 'app.js'));
    assert.equal(await runTaskByLabel('remote lint'), 1);
    const task = api.model.taskList().find((t) => t.command.includes('Missing semicolon'));
    const said = `it printed ${JSON.stringify(api.model.outputs.get(task?.id ?? '')?.text())} in ${task?.agentRoot}`;
    await ui.screenshot('problem-matcher');
    const diagnostics = await poll(
      () => {
        const found = vscode.languages.getDiagnostics(file);
        return found.length > 0 ? found : undefined;
      },
      `a diagnostic on ${file.fsPath} (${said})`,
      10_000,
    );
    const d = diagnostics[0] as vscode.Diagnostic;
    assert.match(d.message, /Missing semicolon/);
    assert.equal(d.range.start.line, 2);
    assert.equal(d.range.start.character, 10);
    assert.equal(d.severity, vscode.DiagnosticSeverity.Error);
  });

  it('cancel stops the remote process, and the task ends as cancelled (exit 130)', async () => {
    const command = 'echo pid=$$; exec sleep 120';
    const ended = runTask(await octaskTask('remote sleep'));
    const pid = await waitForModel(
      api.model,
      () => {
        const t = newestTask(api, command);
        const m = t && /pid=(\d+)/.exec(api.model.outputs.get(t.id)?.text() ?? '');
        return m ? Number(m[1]) : undefined;
      },
      'the remote sleep to print its pid',
    );
    assert.ok(processAlive(pid), 'the remote process runs');
    await ui.openView('Octask');
    await ui.screenshot('running-task');
    const task = newestTask(api, command) as TaskInfo;
    assert.equal(await vscode.commands.executeCommand('octask.cancelTask', task.id), true);
    assert.equal(await ended, 130);
    assert.equal(api.model.tasks.get(task.id)?.status, 'cancelled');
    await poll(() => !processAlive(pid), `process ${pid} to be gone`, 10_000);
  });

  it('closing the task terminal cancels the remote task', async () => {
    const command = 'echo pid=$$; exec sleep 120';
    const ended = runTask(await octaskTask('remote sleep'));
    const before = new Set(api.model.tasks.keys());
    const pid = await waitForModel(
      api.model,
      () => {
        const t = api.model.taskList().find((x) => x.command === command && !before.has(x.id));
        const m = t && /pid=(\d+)/.exec(api.model.outputs.get(t.id)?.text() ?? '');
        return m ? Number(m[1]) : undefined;
      },
      'the second sleep to run',
    );
    const execution = vscode.tasks.taskExecutions.find((e) => e.task.name === 'remote sleep');
    assert.ok(execution, 'the task is running in VS Code');
    execution.terminate();
    await ended;
    await poll(() => !processAlive(pid), `process ${pid} to be gone`, 10_000);
  });

  it('restarts a crashed dispatcher, says so in the log, and runs tasks again', async () => {
    // Only this window's dispatcher: vscode-languageclient passes the extension host's pid.
    const mine = `octask.js dispatcher --stdio --clientProcessId=${process.pid}`;
    const pids = execFileSync('pgrep', ['-f', mine], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map(Number);
    assert.ok(pids.length >= 1, 'the dispatcher process is found');
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await waitForModel(
      api.model,
      () => api.model.log.some((e) => /dispatcher exited unexpectedly; restarting/.test(e.message)),
      'the restart to be logged',
    );
    await poll(
      () =>
        api.client.state === 'running' &&
        [...api.model.agents.values()].filter((a) => a.status === 'online').length === 2,
      'the restarted dispatcher to reconnect both agents',
    );
    assert.equal(await runTask(await octaskTask('remote ok')), 0);
  });

  it('a task running when the dispatcher crashes is taken back: it completes, its output whole', async () => {
    const command = 'i=1; while [ $i -le 15 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done';
    const { tasks } = await api.client.submit({ command });
    const id = tasks[0]?.id;
    assert.ok(id, 'the task was submitted');
    await poll(
      () => (api.model.outputs.get(id)?.text() ?? '').includes('tick 3'),
      'the task to print its first lines',
    );
    const mine = `octask.js dispatcher --stdio --clientProcessId=${process.pid}`;
    for (const pid of execFileSync('pgrep', ['-f', mine], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map(Number))
      process.kill(pid, 'SIGKILL');
    // Not marked lost: the restarted dispatcher reads its journal and reattaches.
    await poll(
      () => api.model.tasks.get(id)?.status === 'completed',
      'the task to complete',
      40_000,
    );
    const expected = Array.from({ length: 15 }, (_, i) => `tick ${i + 1}\n`).join('');
    assert.equal(api.model.outputs.get(id)?.text(), expected);
  });

  it('octask.trace.server shows the JSON-RPC traffic in the Octask log', async () => {
    const config = vscode.workspace.getConfiguration('octask');
    await config.update('trace.server', 'messages', vscode.ConfigurationTarget.Workspace);
    try {
      assert.equal(await runTask(await octaskTask('remote ok')), 0);
      const logFile = join(api.logFolder.fsPath, 'Octask.log');
      await poll(
        () =>
          existsSync(logFile) &&
          /\[rpc\] Sending request 'octask\/tasks\/submit/.test(readFileSync(logFile, 'utf8')),
        `the submit request traced in ${logFile}`,
        10_000,
      );
    } finally {
      await config.update('trace.server', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });

  it('Diagnose reports TLS-PSK in this runtime, the key id and each agent, read-only', async () => {
    const text = await vscode.commands.executeCommand<string>('octask.diagnose');
    const doc = vscode.window.activeTextEditor?.document;
    assert.equal(doc?.uri.scheme, 'octask-diagnosis', 'a virtual document, not Untitled-1');
    assert.equal(doc?.isUntitled, false);
    assert.equal(doc?.isDirty, false);
    assert.equal(doc?.getText(), text);
    assert.match(text ?? '', /TLS-PSK in this VS Code's runtime: \*\*works\*\*/);
    assert.match(text ?? '', /Cluster key: id `[0-9a-f]{16}`, from secret storage/);
    assert.match(text ?? '', /\*\*desk\*\* `127\.0\.0\.1:\d+` \(listed\): online/);
    await ui.screenshot('diagnose');
  });

  it('an agent with another key raises one alert with Set Cluster Key and Diagnose, and a log entry', async () => {
    assert.ok(dir);
    const other = newKeyFile(dir.path, 'other-key');
    const stranger = await startAgent({ keyFile: other.path, name: 'stranger' });
    agents.push(stranger);
    await vscode.commands.executeCommand('notifications.clearAll');
    await vscode.commands.executeCommand('octask.addAgent', stranger.address);
    await waitForModel(
      api.model,
      () => api.model.agents.get(stranger.address)?.status === 'wrong_key',
      'the agent with another key to be refused',
    );
    const toast = await ui.textOf('.notification-toast');
    assert.match(toast, /holds another cluster key/, toast);
    assert.match(toast, /Set Cluster Key/, toast);
    assert.match(toast, /Diagnose/, toast);
    assert.ok(
      api.model.log.some(
        (e) => e.level === 'warn' && e.message.includes('holds another cluster key'),
      ),
      'the Logs view records it',
    );
    const row = api.views.workers
      .getChildren()
      .map((n) => api.views.workers.getTreeItem(n))
      .find((i) => i.id === `agent:${stranger.address}`);
    assert.equal(row?.description, 'wrong key');
    assert.match(String(row?.contextValue), /^agent\.listed\.wrong_key/);
    await ui.openView('Octask');
    await ui.screenshot('workers-wrong-key');
    await vscode.commands.executeCommand('octask.removeAgent', stranger.address);
    await vscode.commands.executeCommand('notifications.clearAll');
  });

  it('Save the Agent to a Folder writes the bundled octask-agent.js there', async () => {
    const folder = tempDir('octask-save-agent-');
    try {
      const file = await vscode.commands.executeCommand<string>(
        'octask.saveAgentFile',
        folder.path,
      );
      assert.equal(file, join(folder.path, 'octask-agent.js'));
      assert.match(readFileSync(file, 'utf8').slice(0, 40), /^#!/);
      const toast = await ui.textOf('.notification-toast');
      assert.match(toast, /node octask-agent\.js/);
      await vscode.commands.executeCommand('notifications.clearAll');
    } finally {
      folder.cleanup();
    }
  });

  it('Start Local Agent runs the bundled agent on this machine and adds it to the pool', async () => {
    const address = await vscode.commands.executeCommand<string>('octask.startLocalAgent');
    assert.match(address ?? '', /^127\.0\.0\.1:\d+$/);
    const local = await waitForModel(
      api.model,
      () => {
        const a = api.model.agents.get(address ?? '');
        return a?.status === 'online' ? a : undefined;
      },
      'the local agent to come online',
    );
    assert.match(local.name, /-local$/);
    const { tasks } = await api.client.submit({
      command: 'echo on the local agent',
      target: { kind: 'agent', name: local.name },
    });
    const id = tasks[0]?.id ?? '';
    const done = await waitForModel(
      api.model,
      () => (api.model.tasks.get(id)?.status === 'completed' ? api.model.tasks.get(id) : undefined),
      'the task on the local agent',
    );
    assert.equal(done.agent, local.name);
    assert.equal(api.model.outputs.get(id)?.text(), 'on the local agent\n');
    await vscode.commands.executeCommand('octask.stopLocalAgent');
    await waitForModel(
      api.model,
      () => !api.model.agents.has(address ?? ''),
      'the local agent to leave the pool',
    );
  });

  it('Pair a Device gives one line; an agent holding its key joins, named by the pairing', async () => {
    const line = await vscode.commands.executeCommand<string>('octask.pairDevice', 'phone');
    assert.match(
      line ?? '',
      /^mkdir -p ~\/\.config\/octask && \(umask 077 && echo 'octask-pair phone [0-9a-f]+ [0-9a-f]{64}' > ~\/\.config\/octask\/key\)$/,
    );
    assert.ok(
      clusterKey && !(line ?? '').includes(clusterKey.secret.toString('hex')),
      'the line must not carry the cluster key',
    );
    // The device: a home of its own, where the pasted line installs the key.
    const home = join(dir?.path ?? '', 'phone-home');
    mkdirSync(home, { recursive: true });
    execFileSync('sh', ['-c', line ?? 'false'], { env: { ...process.env, HOME: home } });
    const phone = await startAgent({
      keyFile: join(home, '.config', 'octask', 'key'),
      name: 'phone',
    });
    agents.push(phone);
    await vscode.commands.executeCommand('octask.addAgent', phone.address);
    await waitForModel(
      api.model,
      () => api.model.agents.get(phone.address)?.status === 'online',
      'the paired phone to come online',
    );
  });

  it('a task queued under a wrong key runs once the right key is back (not lost)', async () => {
    assert.ok(clusterKey, 'an earlier test set the cluster key');
    const right = clusterKey.secret.toString('hex');
    await vscode.commands.executeCommand('octask.setClusterKey', 'ab'.repeat(32));
    await poll(
      () =>
        api.client.state === 'running' &&
        [...api.model.agents.values()].some((a) => a.status === 'wrong_key'),
      'the agents to refuse the wrong key',
    );
    const { tasks } = await api.client.submit({ command: 'echo back with the right key' });
    const id = tasks[0]?.id ?? '';
    assert.equal(api.model.tasks.get(id)?.status, 'pending');
    await vscode.commands.executeCommand('octask.setClusterKey', right);
    const done = await waitForModel(
      api.model,
      () => {
        const t = api.model.tasks.get(id);
        return t && t.status !== 'pending' && t.status !== 'running' ? t : undefined;
      },
      'the queued task to end',
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(api.model.outputs.get(id)?.text(), 'back with the right key\n');
  });
});
