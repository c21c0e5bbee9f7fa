import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../shared/logger';
import { tempDir } from '../test/helpers/agentProcess';
import { alive, waitFor } from '../test/helpers/taskProcesses';
import { cgroup2Mount, TaskCgroups } from './cgroup';
import { Keeper } from './keeper';
import { groupMembers, readStat } from './procfs';
import { TaskContainment } from './taskContainment';
import { findMarked, killMarked } from './taskMarker';

describe('task containment @integration', () => {
  let dir: ReturnType<typeof tempDir>;
  let keeper: Keeper;
  let cgroupBase: string;
  const started: ChildProcess[] = [];
  const strays: number[] = [];
  const markers: string[] = [];
  before(() => {
    const mount = cgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
    if (!mount)
      throw new Error('this test needs cgroup v2 mounted (/proc/self/mountinfo has none)');
    cgroupBase = join(mount.mountPoint, `octask-containment-${process.pid}`);
    mkdirSync(cgroupBase);
  });
  after(() => rmdirSync(cgroupBase));
  beforeEach(() => {
    dir = tempDir('octask-containment-');
    keeper = Keeper.start(silentLogger);
  });
  afterEach(async () => {
    for (const m of markers.splice(0)) killMarked(m, 'SIGKILL');
    for (const c of started.splice(0)) c.kill('SIGKILL');
    for (const pid of strays.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await keeper.stop();
    dir.cleanup();
  });

  /**
   * A task that, once told to go, starts one child in its group, one that
   * leaves it with setsid, and one that also drops the marker.
   */
  async function runTask(containment: TaskContainment): Promise<{
    leader: number;
    inGroup: number;
    setsid: number;
    unmarked: number;
  }> {
    markers.push(containment.marker);
    const child = spawn(
      'sh',
      ['-c', 'read go; sleep 381 & setsid sleep 382 & env -i setsid sleep 383 & wait'],
      {
        env: { ...process.env, ...containment.env },
        detached: true,
        stdio: ['pipe', 'ignore', 'ignore'],
      },
    );
    started.push(child);
    const leader = child.pid as number;
    containment.started(leader);
    child.stdin?.write('go\n');
    const byArg = (arg: string): number | undefined =>
      readdirSync('/proc')
        .filter((n) => /^\d+$/.test(n))
        .map(Number)
        .find((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, 'latin1') === `sleep\0${arg}\0`;
          } catch {
            return false;
          }
        });
    await waitFor('the three children', () => ['381', '382', '383'].every((a) => byArg(a)));
    const [inGroup, setsid, unmarked] = ['381', '382', '383'].map((a) => byArg(a) as number) as [
      number,
      number,
      number,
    ];
    strays.push(inGroup, setsid, unmarked);
    assert.ok(groupMembers(leader).includes(inGroup));
    assert.notEqual(readStat(setsid)?.pgrp, leader);
    assert.ok(!findMarked(containment.marker).includes(unmarked));
    return { leader, inGroup, setsid, unmarked };
  }

  const records = (): string[] =>
    existsSync(join(dir.path, 'running')) ? readdirSync(join(dir.path, 'running')) : [];

  it('with a cgroup, ends all a task started once its leader exits, and forgets the task', async () => {
    const cgroups = TaskCgroups.detect({ path: cgroupBase });
    assert.ok(cgroups);
    const containment = new TaskContainment(
      { workdir: dir.path, logger: silentLogger, keeper, cgroups },
      't1',
      'd1',
    );
    const p = await runTask(containment);
    // Recorded once it has run a moment (a task that ends sooner needs no record).
    await waitFor('the task to be recorded', () => records().length === 1);
    assert.equal(readdirSync(cgroupBase).filter((n) => n.startsWith('task-t1-')).length, 1);
    process.kill(p.leader, 'SIGKILL');
    await waitFor('the leader to exit', () => !alive(p.leader));
    await containment.release();
    for (const pid of [p.inGroup, p.setsid, p.unmarked]) assert.ok(!alive(pid), `${pid} ended`);
    assert.deepEqual(records(), []);
    assert.deepEqual(
      readdirSync(cgroupBase).filter((n) => n.startsWith('task-')),
      [],
      'its cgroup is removed',
    );
  });

  it('without a cgroup, ends the marked, and a child that has dropped both group and marker escapes', async () => {
    const containment = new TaskContainment(
      { workdir: dir.path, logger: silentLogger, keeper },
      't2',
      'd1',
    );
    const p = await runTask(containment);
    // The leader, its child in the group and the setsid child all carry the marker.
    assert.equal(containment.signal('SIGTERM'), 3);
    await waitFor('the marked to end', () =>
      [p.leader, p.inGroup, p.setsid].every((x) => !alive(x)),
    );
    await containment.release();
    // Documented in docs/ARCHITECTURE.md, "What can still escape a task".
    assert.ok(alive(p.unmarked), 'a cleared environment plus setsid escapes without a cgroup');
    assert.deepEqual(records(), []);
  });
});
