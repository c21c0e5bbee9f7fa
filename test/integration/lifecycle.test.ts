import assert from 'node:assert/strict';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runCli, startAgent, tempDir } from '../helpers/agentProcess';
import {
  ancestors,
  marker,
  processesMatching,
  waitUntilGone,
  waitUntilRunning,
} from '../helpers/processes';

describe('timeouts, cancels and lost agents leave nothing behind @integration', function () {
  this.timeout(60_000);
  const dir = tempDir();
  let keyFile: string;
  let a: StartedAgent;
  const base = (agent: StartedAgent): string[] => [
    '--agent',
    agent.address,
    '--key-file',
    keyFile,
    '--no-mdns',
  ];

  before(async () => {
    keyFile = newKeyFile(dir.path).path;
    a = await startAgent({ keyFile, name: 'keeper' });
  });
  after(async () => {
    await a?.stop();
    dir.cleanup();
  });

  it("ends a timed-out task's whole process group and exits 124", async () => {
    const n = marker();
    const r = await runCli([
      'run',
      ...base(a),
      '--timeout',
      '1',
      '--',
      `sleep ${n} & sleep ${n} & (sleep ${n}; true) & wait`,
    ]);
    assert.equal(r.code, 124, r.stderr);
    assert.match(r.stderr, /timed out/);
    assert.deepEqual(await waitUntilGone(`^sleep ${n}`), []);
  });

  it('kills a task that ignores TERM once the grace period is over', async () => {
    const n = marker();
    const r = await runCli([
      'run',
      ...base(a),
      '--timeout',
      '1',
      '--json',
      '--',
      `trap "" TERM; sleep ${n}; sleep ${n}`,
    ]);
    assert.equal(r.code, 124);
    const t = (JSON.parse(r.stdout) as { tasks: Array<{ status: string }> }).tasks[0];
    assert.equal(t?.status, 'timed_out');
    assert.deepEqual(await waitUntilGone(`^sleep ${n}`), []);
  });

  it('kills what a finished command left running in the background', async () => {
    const n = marker();
    const r = await runCli(['run', ...base(a), '--', `(sleep ${n} &); echo done`]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'done\n');
    assert.deepEqual(await waitUntilGone(`^sleep ${n}`), []);
  });

  it('cancels the remote task on Ctrl+C and exits 130', async () => {
    const n = marker();
    let cli: import('node:child_process').ChildProcess | undefined;
    const done = runCli(['run', ...base(a), '--', `sleep ${n}`], { onSpawn: (p) => (cli = p) });
    assert.ok(
      (await waitUntilRunning(`^sleep ${n}`)).length > 0,
      'the remote command never started',
    );
    cli?.kill('SIGINT');
    const r = await done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /cancelling/);
    assert.deepEqual(await waitUntilGone(`^sleep ${n}`), []);
  });

  it('finishes a task on another agent when its agent is killed mid-task', async () => {
    const pair = await Promise.all([
      startAgent({ keyFile, name: 'one', maxJobs: 1 }),
      startAgent({ keyFile, name: 'two', maxJobs: 1 }),
    ]);
    const n = marker();
    const flag = `${dir.path}/first-attempt-${n}`;
    try {
      // The first attempt marks the flag and hangs; the retry sees the flag and finishes.
      const done = runCli([
        'run',
        '--agent',
        pair[0].address,
        '--agent',
        pair[1].address,
        '--key-file',
        keyFile,
        '--no-mdns',
        '--json',
        '--',
        `if [ -e ${flag} ]; then echo "finished on $OCTASK_AGENT_NAME"; else touch ${flag}; sleep ${n}; fi`,
      ]);
      const [sleeper] = await waitUntilRunning(`^sleep ${n}`);
      assert.ok(sleeper, 'the first attempt never started');
      const holder = pair.find((agent) => ancestors(sleeper).includes(agent.proc.pid ?? -1));
      assert.ok(holder, 'could not tell which agent runs the task');
      const other = pair.find((agent) => agent !== holder)!;
      holder.proc.kill('SIGKILL');
      const r = await done;
      assert.equal(r.code, 0, r.stderr);
      const t = (
        JSON.parse(r.stdout) as {
          tasks: Array<{ agent: string; attempts: number; status: string }>;
        }
      ).tasks[0];
      assert.equal(t?.status, 'completed');
      assert.equal(t?.agent, other.name);
      assert.equal(t?.attempts, 2);
      assert.match(r.stderr, new RegExp(`finished on ${other.name}`));
    } finally {
      // The killed agent could not clean up after itself; do it so we leave nothing.
      for (const pid of processesMatching(`^sleep ${n}`)) process.kill(pid, 'SIGKILL');
      await Promise.all(pair.map((agent) => agent.stop()));
    }
  });
});
