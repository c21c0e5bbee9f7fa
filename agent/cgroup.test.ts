import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, waitFor } from '../test/helpers/taskProcesses';
import { cgroup2Mount, ownCgroupPath, TaskCgroups } from './cgroup';
import { findMarked, killMarked, newMarker, TASK_MARKER_VAR } from './taskMarker';

const MOUNTINFO = [
  '24 1 8:1 / / rw,relatime - ext4 /dev/root rw',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');

describe('task cgroups', () => {
  it('reads the agent cgroup and the cgroup2 mount, whatever the layout', () => {
    assert.equal(
      ownCgroupPath('1:cpu:/\n0::/system.slice/octask.service\n'),
      '/system.slice/octask.service',
    );
    assert.equal(ownCgroupPath('4:memory:/x\n'), undefined); // cgroup v1 only
    assert.deepEqual(cgroup2Mount(MOUNTINFO), { root: '/', mountPoint: '/sys/fs/cgroup/unified' });
    assert.deepEqual(cgroup2Mount('30 1 0:26 /a\\040b /sys/fs/cgroup rw - cgroup2 cgroup2 rw'), {
      root: '/a b',
      mountPoint: '/sys/fs/cgroup',
    });
    assert.equal(cgroup2Mount('24 1 8:1 / / rw - ext4 /dev/root rw'), undefined);
  });

  it('is off in the hierarchy root, without cgroup v2, and for a folder that is no cgroup', () => {
    assert.equal(TaskCgroups.detect({ selfCgroup: '0::/\n', mountinfo: MOUNTINFO }), undefined);
    assert.equal(
      TaskCgroups.detect({ selfCgroup: '4:memory:/x\n', mountinfo: MOUNTINFO }),
      undefined,
    );
    assert.equal(TaskCgroups.detect({ path: '/nonexistent/cgroup' }), undefined);
  });
});

describe('task cgroups in a real cgroup v2 @integration', () => {
  let base: string;
  let mountPoint: string;
  const started: ChildProcess[] = [];
  let marker: string;
  before(function () {
    const mount = cgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
    if (!mount)
      throw new Error('this test needs cgroup v2 mounted (/proc/self/mountinfo has none)');
    // A folder this test makes and removes: the only cgroups it touches.
    mountPoint = mount.mountPoint;
    base = join(mountPoint, `octask-test-${process.pid}`);
    mkdirSync(base);
  });
  after(() => rmdirSync(base));
  beforeEach(() => (marker = newMarker()));
  afterEach(() => {
    killMarked(marker, 'SIGKILL');
    for (const c of started.splice(0)) c.kill('SIGKILL');
  });

  async function escapingTask(
    cgroups: TaskCgroups,
  ): Promise<{ pids: () => number[]; group: ReturnType<TaskCgroups['createTaskCgroup']> }> {
    const group = cgroups.createTaskCgroup('t/1');
    assert.ok(group);
    // It waits for a line, so it is in its cgroup before it forks: one child
    // leaves the process group, the other also drops the marker.
    const task = spawn('sh', ['-c', 'read go; setsid sleep 361 & env -i setsid sleep 362 & wait'], {
      env: { ...process.env, [TASK_MARKER_VAR]: marker },
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    started.push(task);
    assert.ok(group.add(task.pid as number));
    task.stdin?.write('go\n');
    const pids = (): number[] =>
      readFileSync(join(group.path, 'cgroup.procs'), 'latin1')
        .split('\n')
        .filter(Boolean)
        .map(Number);
    // Until `env -i` has exec'd, its forked shell still carries the marker: wait for both.
    await waitFor(
      'three processes in the cgroup, one of which escaped the marker too',
      () => pids().length === 3 && findMarked(marker).length === 2,
    );
    return { pids, group };
  }

  /** Runs detect() as uid 65534 from inside `folder`; returns what it found and made. */
  async function detectAsNobody(folder: string): Promise<{ base?: string; task?: string }> {
    const source = `process.stdin.once('data', async () => {
      const { TaskCgroups } = require(${JSON.stringify(require.resolve('./cgroup'))});
      const cgroups = TaskCgroups.detect();
      const task = cgroups && cgroups.createTaskCgroup('x');
      console.log(JSON.stringify({ base: cgroups && cgroups.base, task: task && task.path }));
      if (task) await task.remove();
      process.exit(0);
    });`;
    const proc = spawn(process.execPath, ['-e', source], {
      uid: 65534,
      gid: 65534,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    started.push(proc);
    let out = '';
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    writeFileSync(join(folder, 'cgroup.procs'), String(proc.pid));
    proc.stdin?.write('go\n');
    await new Promise((r) => proc.once('close', r));
    return JSON.parse(out) as { base?: string; task?: string };
  }

  it('finds by itself a cgroup delegated to its user (chowned, as systemd does), and no other', async () => {
    const delegated = join(base, 'delegated');
    const foreign = join(base, 'foreign');
    mkdirSync(delegated);
    mkdirSync(foreign);
    try {
      for (const f of ['', 'cgroup.procs', 'cgroup.threads', 'cgroup.subtree_control']) {
        chownSync(join(delegated, f), 65534, 65534);
      }
      const found = await detectAsNobody(delegated);
      assert.equal(found.base, delegated);
      assert.ok(found.task?.startsWith(`${delegated}/task-x-`), `made ${found.task}`);
      assert.ok(!existsSync(found.task ?? ''), 'and removed it');
      assert.deepEqual(await detectAsNobody(foreign), {});
      // Root may write every cgroup, which says nothing about whose it is: root must name one.
      assert.equal(process.getuid?.(), 0, 'this suite runs as root');
      assert.equal(
        TaskCgroups.detect({ selfCgroup: `0::${delegated.slice(mountPoint.length)}\n` }),
        undefined,
      );
      assert.ok(TaskCgroups.detect({ path: delegated }));
    } finally {
      rmdirSync(delegated);
      rmdirSync(foreign);
    }
  });

  for (const useKillFile of [true, false]) {
    it(`ends what escaped the group and the marker (${useKillFile ? 'cgroup.kill' : 'a signal each'})`, async () => {
      const cgroups = TaskCgroups.detect({ path: base, useKillFile });
      assert.ok(cgroups, 'a folder we made is usable');
      const { pids, group } = await escapingTask(cgroups);
      assert.ok(group);
      const inside = pids();
      assert.equal(group.kill(), 3);
      await waitFor('all of them to end', () => inside.every((pid) => !alive(pid)));
      assert.equal(await group.remove(), true);
      assert.ok(!existsSync(group.path));
    });
  }
});
