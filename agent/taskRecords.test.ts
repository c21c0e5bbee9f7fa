import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../shared/logger';
import { tempDir } from '../test/helpers/agentProcess';
import { alive, startStandIn, waitFor } from '../test/helpers/taskProcesses';
import { bootId, groupMembers, readStat } from './procfs';
import { findMarked, killMarked, newMarker, TASK_MARKER_VAR } from './taskMarker';
import type { TaskRecord } from './taskRecords';
import { reapOrphans, recordTask, removeTaskRecord } from './taskRecords';

const running = (workdir: string): string[] => {
  try {
    return readdirSync(join(workdir, 'running')).sort();
  } catch {
    return [];
  }
};

describe('task records', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => (dir = tempDir('octask-records-')));
  afterEach(() => dir.cleanup());

  it('writes one whole file per running task and removes it at the end', () => {
    const marker = newMarker();
    const record = recordTask(dir.path, {
      task: 't1',
      owner: 'd1',
      pid: process.pid,
      pgid: process.pid,
      marker,
    });
    assert.equal(record.startTime, readStat(process.pid)?.startTime);
    assert.equal(record.agentPid, process.pid);
    assert.equal(record.bootId, bootId());
    const [name, ...others] = running(dir.path);
    assert.deepEqual(others, []);
    assert.match(name ?? '', /^t1-[0-9a-f]{16}\.json$/);
    const onDisk = JSON.parse(readFileSync(join(dir.path, 'running', name ?? ''), 'utf8'));
    assert.deepEqual(onDisk, record);
    removeTaskRecord(dir.path, 'd1', 't1');
    assert.deepEqual(running(dir.path), []);
  });

  it('keeps odd task names inside the folder, and two owners of one task name apart', () => {
    const fields = { pid: process.pid, pgid: process.pid, marker: newMarker() };
    recordTask(dir.path, { task: '../../etc/x', owner: 'd1', ...fields });
    recordTask(dir.path, { task: '../../etc/x', owner: 'd2', ...fields });
    const names = running(dir.path);
    assert.equal(names.length, 2);
    for (const n of names) assert.match(n, /^\.\._\.\._etc_x-[0-9a-f]{16}\.json$/);
  });

  it('keeps the records of an agent that still runs on the same workdir', async () => {
    // Another live process stands for that agent: its pid and its true start time.
    const other = spawn('sleep', ['321'], { stdio: 'ignore' });
    try {
      const record: TaskRecord = {
        task: 't1',
        owner: 'd1',
        pid: other.pid as number,
        pgid: other.pid as number,
        startTime: readStat(other.pid as number)?.startTime ?? null,
        marker: newMarker(),
        startedAt: new Date().toISOString(),
        agentPid: other.pid as number,
        agentStartTime: readStat(other.pid as number)?.startTime ?? null,
        bootId: bootId() ?? null,
      };
      mkdirSync(join(dir.path, 'running'));
      writeFileSync(join(dir.path, 'running', 't1.json'), JSON.stringify(record));
      assert.deepEqual(await reapOrphans(dir.path, silentLogger), []);
      assert.deepEqual(running(dir.path), ['t1.json']);
      assert.ok(alive(other.pid as number));
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('removes half-written and unreadable records', async () => {
    mkdirSync(join(dir.path, 'running'));
    writeFileSync(join(dir.path, 'running', 't1.json.0a1b.tmp'), '{"task":');
    writeFileSync(join(dir.path, 'running', 't2.json'), '{"task": "t2"}');
    assert.deepEqual(await reapOrphans(dir.path, silentLogger), []);
    assert.deepEqual(running(dir.path), []);
  });

  it('finds nothing in a workdir that never ran a task', async () => {
    assert.deepEqual(await reapOrphans(dir.path, silentLogger), []);
  });
});

/**
 * A stand-in for an agent that dies with tasks running: it starts them as
 * the runner does (own process group, marker in the environment), records
 * them, prints their ids, and waits to be killed.
 *   A: leader alive; one child cleared its environment, one left with setsid.
 *   B: leader exited at once; what it started stays in its group.
 */
const PREVIOUS_AGENT = `
const { spawn } = require('child_process');
const { recordTask } = require(${JSON.stringify(require.resolve('./taskRecords'))});
const [workdir, markerA, markerB] = process.argv.slice(1);
const run = (script, marker) => spawn('sh', ['-c', script], {
  env: { ...process.env, ${TASK_MARKER_VAR}: marker }, detached: true, stdio: 'ignore' });
const a = run('env -i sleep 331 & setsid sleep 332 & exec sleep 333', markerA);
const b = run('env -i sleep 334 & sleep 335 & exit 0', markerB);
recordTask(workdir, { task: 'A', owner: 'd1', pid: a.pid, pgid: a.pid, marker: markerA });
recordTask(workdir, { task: 'B', owner: 'd2', pid: b.pid, pgid: b.pid, marker: markerB });
console.log(JSON.stringify({ a: a.pid, b: b.pid }));
setInterval(() => {}, 1000);
`;

describe('orphans of a dead agent @integration', () => {
  let dir: ReturnType<typeof tempDir>;
  const markers: string[] = [];
  const started: ChildProcess[] = [];
  beforeEach(() => (dir = tempDir('octask-orphans-')));
  afterEach(() => {
    for (const m of markers.splice(0)) killMarked(m, 'SIGKILL');
    for (const c of started.splice(0)) c.kill('SIGKILL');
    dir.cleanup();
  });

  it('ends every process its tasks left, in their groups and out, and removes the records', async () => {
    const [markerA, markerB] = [newMarker(), newMarker()] as [string, string];
    markers.push(markerA, markerB);
    const { proc, ready, exited } = await startStandIn<{ a: number; b: number }>(PREVIOUS_AGENT, [
      dir.path,
      markerA,
      markerB,
    ]);
    started.push(proc);
    await waitFor(
      'task A to run, one child out of its group',
      () => groupMembers(ready.a).length === 2 && findMarked(markerA).length === 2,
    );
    await waitFor('task B to run, its leader gone', () => groupMembers(ready.b).length === 2);
    const unmarked = [...groupMembers(ready.a), ...groupMembers(ready.b)].filter(
      (pid) => !findMarked(markerA).includes(pid) && !findMarked(markerB).includes(pid),
    );
    assert.equal(unmarked.length, 2, 'one child in each group without the marker');
    proc.kill('SIGKILL');
    await exited;
    assert.equal(running(dir.path).length, 2);

    const orphans = await reapOrphans(dir.path, silentLogger, { graceMs: 1000 });
    const byTask = new Map(orphans.map((o) => [o.task, o]));
    assert.deepEqual(orphans.map((o) => [o.task, o.owner]).sort(), [
      ['A', 'd1'],
      ['B', 'd2'],
    ]);
    // A: sh exec'd sleep 333, plus the env -i child and the setsid child.
    assert.equal(byTask.get('A')?.killed, 3);
    assert.equal(byTask.get('B')?.killed, 2);
    assert.deepEqual(groupMembers(ready.a), []);
    assert.deepEqual(groupMembers(ready.b), []);
    assert.deepEqual(findMarked(markerA), []);
    assert.deepEqual(findMarked(markerB), []);
    for (const pid of unmarked) assert.ok(!alive(pid), `unmarked group member ${pid} ended`);
    assert.deepEqual(running(dir.path), []);
  });

  it('leaves alone a live process whose pid was reused (start time differs)', async () => {
    // An unrelated process leading its own group: the worst case for a stale pgid.
    const unrelated = spawn('sleep', ['341'], { detached: true, stdio: 'ignore' });
    started.push(unrelated);
    const pid = unrelated.pid as number;
    await waitFor('it to run', () => alive(pid));
    const stat = readStat(pid);
    assert.ok(stat);
    // An agent that is gone: a pid that has exited.
    const gone = spawn('true');
    await new Promise((r) => gone.once('exit', r));
    const marker = newMarker();
    markers.push(marker);
    const record: TaskRecord = {
      task: 'old',
      owner: 'd1',
      pid,
      pgid: pid,
      startTime: stat.startTime - 1,
      marker,
      startedAt: new Date().toISOString(),
      agentPid: gone.pid as number,
      agentStartTime: 1,
      bootId: bootId() ?? null,
    };
    mkdirSync(join(dir.path, 'running'));
    writeFileSync(join(dir.path, 'running', 'old.json'), JSON.stringify(record));

    const orphans = await reapOrphans(dir.path, silentLogger, { graceMs: 200 });
    assert.deepEqual(orphans, [{ task: 'old', owner: 'd1', killed: 0 }]);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(alive(pid), 'the unrelated process was not signalled');
    assert.deepEqual(running(dir.path), []);
  });

  it('leaves alone processes a record from an earlier boot names', async () => {
    const unrelated = spawn('sleep', ['342'], { detached: true, stdio: 'ignore' });
    started.push(unrelated);
    const pid = unrelated.pid as number;
    await waitFor('it to run', () => alive(pid));
    const marker = newMarker();
    markers.push(marker);
    const record: TaskRecord = {
      task: 'old',
      owner: 'd1',
      pid,
      pgid: pid,
      // Even a matching start time means nothing in another boot.
      startTime: readStat(pid)?.startTime ?? null,
      marker,
      startedAt: new Date().toISOString(),
      agentPid: process.pid,
      agentStartTime: readStat(process.pid)?.startTime ?? null,
      bootId: '00000000-0000-0000-0000-000000000000',
    };
    mkdirSync(join(dir.path, 'running'));
    writeFileSync(join(dir.path, 'running', 'old.json'), JSON.stringify(record));
    assert.deepEqual(await reapOrphans(dir.path, silentLogger, { graceMs: 200 }), [
      { task: 'old', owner: 'd1', killed: 0 },
    ]);
    assert.ok(alive(pid));
  });
});
