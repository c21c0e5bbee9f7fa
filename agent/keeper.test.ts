import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import type { LogFields, Logger } from '../shared/logger';
import { alive, caughtSignals, startStandIn, waitFor } from '../test/helpers/taskProcesses';
import { Keeper } from './keeper';
import { groupMembers } from './procfs';
import { findMarked, killMarked, newMarker, TASK_MARKER_VAR } from './taskMarker';

/**
 * A stand-in for the agent: starts a Keeper, runs a task (a process group
 * with a setsid'd child, all carrying the marker) and a second group it
 * tracks and then untracks, and prints their ids. The test then kills it.
 */
const STAND_IN = `
const { spawn } = require('child_process');
const { Keeper } = require(${JSON.stringify(require.resolve('./keeper'))});
const [marker, spareMarker, leak] = process.argv.slice(1);
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const keeper = Keeper.start(silent, { graceMs: 1000 });
const run = (script, m) => spawn('sh', ['-c', script], {
  env: { ...process.env, ${TASK_MARKER_VAR}: m }, detached: true, stdio: 'ignore' });
const task = run('setsid sleep 311 & sleep 312 & wait', marker);
const spare = run('exec sleep 313', spareMarker);
keeper.track('t1', task.pid, marker);
keeper.track('t2', spare.pid, spareMarker);
keeper.untrack('t2');
// 'leak': a process that holds the keeper's pipe open, as a leaked descriptor would.
const holder = leak && spawn('sleep', ['316'], { stdio: ['ignore', keeper.child.stdin, 'ignore'] });
console.log(JSON.stringify({ keeper: keeper.pid, task: task.pid, spare: spare.pid, holder: holder && holder.pid }));
setInterval(() => {}, 1000);
`;

interface Ready {
  keeper: number;
  task: number;
  spare: number;
  holder?: number;
}

/** The keeper has installed its handlers for SIGHUP, SIGINT and SIGTERM: it is running its script. */
const keeperReady = (pid: number): boolean =>
  [1, 2, 15].every((s) => caughtSignals(pid).includes(s));

function captureLogger(): Logger & { records: Array<{ msg: string } & LogFields> } {
  const records: Array<{ msg: string } & LogFields> = [];
  const log = (msg: string, fields?: LogFields): void => void records.push({ msg, ...fields });
  return { records, debug: log, info: log, warn: log, error: log };
}

describe('task keeper @integration', () => {
  let marker: string;
  let spareMarker: string;
  const cleanup: Array<() => void> = [];
  beforeEach(() => {
    marker = newMarker();
    spareMarker = newMarker();
  });
  afterEach(() => {
    for (const m of [marker, spareMarker]) killMarked(m, 'SIGKILL');
    for (const f of cleanup.splice(0)) f();
  });

  async function standIn(leak = ''): Promise<{ proc: ChildProcess; ready: Ready }> {
    const { proc, ready } = await startStandIn<Ready>(STAND_IN, [marker, spareMarker, leak]);
    cleanup.push(() => proc.kill('SIGKILL'));
    await waitFor('the task to run', () => findMarked(marker).length >= 3);
    await waitFor('the keeper to run its script', () => keeperReady(ready.keeper));
    return { proc, ready };
  }

  it('ends the tracked group and its setsid child when the agent is SIGKILLed, then exits', async () => {
    const { proc, ready } = await standIn();
    const setsidChild = findMarked(marker).find((pid) => !groupMembers(ready.task).includes(pid));
    assert.ok(setsidChild, 'a marked process outside the task group');
    const killedAt = Date.now();
    proc.kill('SIGKILL');
    await waitFor('the task group to end', () => groupMembers(ready.task).length === 0, 5000);
    await waitFor('the setsid child to end', () => !alive(setsidChild), 5000);
    const endedMs = Date.now() - killedAt;
    assert.deepEqual(findMarked(marker), []);
    await waitFor('the keeper to exit', () => !alive(ready.keeper), 5000);
    console.log(`      tasks ended ${endedMs} ms, keeper exited ${Date.now() - killedAt} ms after`);
    // It was told to forget the spare group: that one runs on.
    assert.ok(alive(ready.spare), 'the untracked group was left alone');
    assert.deepEqual(findMarked(spareMarker), [ready.spare]);
  });

  it('notices the agent is gone even if something else holds the pipe open', async () => {
    const { proc, ready } = await standIn('leak');
    const holder = ready.holder as number;
    cleanup.push(() => {
      if (alive(holder)) process.kill(holder, 'SIGKILL');
    });
    assert.ok(alive(holder));
    proc.kill('SIGKILL');
    await waitFor('the task group to end', () => groupMembers(ready.task).length === 0, 5000);
    assert.ok(alive(holder), 'the pipe stayed open all along');
  });

  it('survives SIGINT, SIGTERM and SIGHUP, and still ends the tasks when the agent dies', async () => {
    const { proc, ready } = await standIn();
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.kill(ready.keeper, s);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(alive(ready.keeper), 'the keeper is still running');
    assert.ok(groupMembers(ready.task).length > 0, 'and has not ended the task for a signal');
    proc.kill('SIGKILL');
    await waitFor('the task group to end', () => groupMembers(ready.task).length === 0, 5000);
    await waitFor('the keeper to exit', () => !alive(ready.keeper), 5000);
  });

  it('is started again, and told the tracked set, when it dies; stop() ends what is tracked', async () => {
    const logger = captureLogger();
    const keeper = Keeper.start(logger, { graceMs: 500 });
    cleanup.push(() => void keeper.stop());
    const task = spawn('sleep', ['314'], {
      env: { ...process.env, [TASK_MARKER_VAR]: marker },
      detached: true,
      stdio: 'ignore',
    });
    cleanup.push(() => task.kill('SIGKILL'));
    const first = keeper.pid as number;
    assert.ok(first);
    keeper.track('t1', task.pid as number, marker);
    await waitFor('the keeper to run its script', () => keeperReady(first));
    process.kill(first, 'SIGKILL');
    await waitFor('a new keeper', () => keeper.pid !== undefined && keeper.pid !== first);
    const second = keeper.pid as number;
    assert.ok(logger.records.some((r) => r.msg === 'task keeper died; starting it again'));
    await waitFor('the new keeper to run its script', () => keeperReady(second));
    assert.ok(alive(task.pid as number));
    await keeper.stop();
    assert.ok(!alive(second), 'stop() resolves once the keeper has exited');
    assert.ok(!alive(task.pid as number), 'the new keeper knew the task and ended it');
  });

  it('exits at once on stop() when nothing is tracked, and ends nothing', async () => {
    const keeper = Keeper.start(captureLogger());
    const bystander = spawn('sleep', ['315'], { detached: true, stdio: 'ignore' });
    cleanup.push(() => bystander.kill('SIGKILL'));
    const pid = keeper.pid as number;
    keeper.track('t1', bystander.pid as number, marker);
    keeper.untrack('t1');
    await waitFor('the keeper to run its script', () => keeperReady(pid));
    await keeper.stop();
    assert.ok(!alive(pid));
    assert.equal(keeper.pid, undefined);
    assert.ok(alive(bystander.pid as number));
  });

  it('refuses a process group it must never signal', () => {
    const keeper = Keeper.start(captureLogger());
    cleanup.push(() => void keeper.stop());
    assert.throws(() => keeper.track('t', 0, marker), /not a process group/);
    assert.throws(() => keeper.track('t', 1, marker), /not a process group/);
    assert.throws(() => keeper.track('t', 1234, ''), /not a task marker/);
  });
});
