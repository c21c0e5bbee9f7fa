import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runCli, startAgent, tempDir } from '../helpers/agentProcess';
import type { RawPeer } from '../helpers/rawPeer';
import { dispatcherHello, fakeAgent, rawDial } from '../helpers/rawPeer';
import { startRpcDispatcher } from '../helpers/rpcDispatcher';
import type { ClusterKey } from '../../shared/clusterKey';
import type { Message } from '../../shared/protocol';

/** A dispatcher that only listens: it records every load report, to check the agent's own count. */
async function observer(agent: StartedAgent, key: ClusterKey): Promise<RawPeer> {
  const peer = await rawDial(agent.port, key);
  peer.send(dispatcherHello({ name: 'observer' }));
  assert.equal((await peer.next()).t, 'hello');
  return peer;
}

const peak = (peer: RawPeer): number => Math.max(0, ...peer.loads.map((l) => l.running));

async function until<T extends Message['t']>(
  peer: RawPeer,
  t: T,
  task?: string,
): Promise<Extract<Message, { t: T }>> {
  for (;;) {
    const m = await peer.next();
    if (m.t === t && (task === undefined || ('task' in m && m.task === task)))
      return m as Extract<Message, { t: T }>;
  }
}

describe('one cluster, many dispatchers @integration', function () {
  this.timeout(90_000);
  const dir = tempDir();
  let keyFile: string;
  let key: ClusterKey;
  before(() => ({ path: keyFile, key } = newKeyFile(dir.path)));
  after(() => dir.cleanup());

  const cli = (agents: StartedAgent[], args: string[], onSpawn?: (p: ChildProcess) => void) =>
    runCli(
      [
        'run',
        ...agents.flatMap((a) => ['--agent', a.address]),
        '--key-file',
        keyFile,
        '--no-mdns',
        ...args,
      ],
      { onSpawn },
    );

  it('three CLI runs on a 1-slot agent all finish, one after another, and the agent never runs two', async () => {
    const agent = await startAgent({ keyFile, name: 'solo', maxJobs: 1 });
    const watch = await observer(agent, key);
    try {
      const started = Date.now();
      const runs = await Promise.all(
        [1, 2, 3].map(() => cli([agent], ['--', 'sleep 2; echo done'])),
      );
      const elapsed = Date.now() - started;
      for (const r of runs) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'done\n');
      }
      const waited = runs.filter((r) =>
        /waiting for a free slot on solo \((next in line|\d+ ahead)\)/.test(r.stderr),
      );
      assert.ok(
        waited.length >= 2,
        `two runs should say they wait:\n${runs.map((r) => r.stderr).join('\n---\n')}`,
      );
      for (const r of runs)
        assert.ok(
          (r.stderr.match(/waiting for a free slot/g) ?? []).length <= 1,
          'said once, not once a second',
        );
      // One after another: at least the sum of their run times.
      assert.ok(elapsed >= 6000, `three 2 s runs on one slot took ${elapsed} ms`);
      assert.equal(peak(watch), 1, 'the agent ran more than --max-jobs at once');
    } finally {
      watch.ws.close();
      await agent.stop();
    }
  });

  it('two editor dispatchers share two agents without oversubscribing either', async () => {
    const agents = await Promise.all([
      startAgent({ keyFile, name: 'left', maxJobs: 2 }),
      startAgent({ keyFile, name: 'right', maxJobs: 2 }),
    ]);
    const watches = await Promise.all(agents.map((a) => observer(a, key)));
    const editors = await Promise.all(
      [0, 1].map(() => startRpcDispatcher({ key, agents: agents.map((a) => a.address) })),
    );
    try {
      await new Promise((r) => setTimeout(r, 500));
      const submitted = await Promise.all(
        editors.map((e) => e.submit({ command: 'sleep 0.4; echo $OCTASK_AGENT_NAME', shards: 6 })),
      );
      const finals = await Promise.all(
        submitted.flatMap((tasks, i) => tasks.map((t) => editors[i]!.final(t.id))),
      );
      assert.equal(finals.length, 12);
      for (const t of finals) assert.equal(t.status, 'completed', JSON.stringify(t));
      for (const w of watches)
        assert.ok(peak(w) <= 2, `an agent ran ${peak(w)} at once with --max-jobs 2`);
      assert.ok(
        watches.every((w) => peak(w) >= 1),
        'both agents should have been used',
      );
    } finally {
      for (const w of watches) w.ws.close();
      await Promise.all(editors.map((e) => e.kill('SIGTERM')));
      await Promise.all(agents.map((a) => a.stop()));
    }
  });

  it('serves dispatchers in the order they queued: the first to wait starts first', async () => {
    const agent = await startAgent({ keyFile, name: 'fair', maxJobs: 1 });
    const [busy, first, second] = await Promise.all([0, 1, 2].map(() => observer(agent, key)));
    try {
      busy!.send({ t: 'run', task: 'hog', command: 'sleep 30', env: {}, timeoutMs: 0 });
      await until(busy!, 'started');
      first!.send({ t: 'run', task: 'a', command: 'sleep 0.5', env: {}, timeoutMs: 0 });
      assert.equal((await until(first!, 'queued')).ahead, 0);
      second!.send({ t: 'run', task: 'b', command: 'true', env: {}, timeoutMs: 0 });
      assert.equal((await until(second!, 'queued')).ahead, 1);
      busy!.send({ t: 'cancel', task: 'hog' });
      await until(first!, 'started');
      // The second is still waiting while the first runs.
      assert.equal(second!.loads.at(-1)?.yoursQueued, 1);
      await until(first!, 'exit');
      await until(second!, 'started');
      assert.equal((await until(second!, 'exit')).outcome, 'completed');
    } finally {
      for (const p of [busy, first, second]) p?.ws.close();
      await agent.stop();
    }
  });

  it('treats two agents with the same name on one host as two agents, and tells them apart', async () => {
    const twins = await Promise.all([
      startAgent({ keyFile, name: 'phone', maxJobs: 1 }),
      startAgent({ keyFile, name: 'phone', maxJobs: 1 }),
    ]);
    try {
      const list = await runCli([
        'agents',
        ...twins.flatMap((a) => ['--agent', a.address]),
        '--key-file',
        keyFile,
        '--no-mdns',
        '--json',
      ]);
      const doc = JSON.parse(list.stdout) as {
        agents: Array<{ id: string; label: string; status: string }>;
      };
      assert.equal(doc.agents.length, 2);
      assert.notEqual(doc.agents[0]?.id, doc.agents[1]?.id);
      assert.deepEqual(doc.agents.map((a) => a.label).sort(), ['phone', 'phone (2)']);
      const r = await cli(twins, ['--target', 'all', '--', 'echo ran']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.match(/ran/g)?.length, 2);
      assert.match(r.stderr + list.stderr, /two agents share the name phone/);
    } finally {
      await Promise.all(twins.map((a) => a.stop()));
    }
  });

  it('rests below its battery floor while discharging, and takes work again on the charger', async () => {
    const sysfs = join(dir.path, 'sysfs');
    const bat = join(sysfs, 'class', 'power_supply', 'BAT0');
    mkdirSync(bat, { recursive: true });
    writeFileSync(join(bat, 'type'), 'Battery\n');
    writeFileSync(join(bat, 'capacity'), '18\n');
    writeFileSync(join(bat, 'status'), 'Discharging\n');
    const agent = await startAgent({
      keyFile,
      name: 'handset',
      maxJobs: 1,
      env: { OCTASK_SYSFS_ROOT: sysfs, OCTASK_LOAD_POLL_MS: '100' },
    });
    try {
      const list = await runCli([
        'agents',
        '--agent',
        agent.address,
        '--key-file',
        keyFile,
        '--no-mdns',
        '--json',
      ]);
      const a = (JSON.parse(list.stdout) as { agents: Array<{ status: string; battery: unknown }> })
        .agents[0];
      assert.equal(a?.status, 'resting');
      assert.deepEqual(a?.battery, { level: 18, charging: false });
      let exited = false;
      const run = cli([agent], ['--', 'echo charged']).then((r) => {
        exited = true;
        return r;
      });
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(exited, false, 'a resting agent must not take the task');
      writeFileSync(join(bat, 'status'), 'Charging\n');
      const r = await run;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'charged\n');
    } finally {
      await agent.stop();
    }
  });

  it('ends a waiting run at once on Ctrl+C: at a 0-slot agent, and in a busy agent’s queue', async () => {
    const fake = await fakeAgent(key, { maxJobs: 0 });
    const agent = await startAgent({ keyFile, name: 'busy', maxJobs: 1 });
    const watch = await observer(agent, key);
    try {
      let child: ChildProcess | undefined;
      const noSlots = runCli(
        [
          'run',
          '--agent',
          `127.0.0.1:${fake.port}`,
          '--key-file',
          keyFile,
          '--no-mdns',
          '--',
          'true',
        ],
        { onSpawn: (p) => (child = p) },
      );
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = Date.now();
      child?.kill('SIGINT');
      const r0 = await noSlots;
      assert.equal(r0.code, 130, r0.stderr);
      assert.ok(Date.now() - t0 < 3000, 'Ctrl+C must end a waiting run at once');

      let hogProc: ChildProcess | undefined;
      const hog = cli([agent], ['--', 'sleep 20'], (p) => (hogProc = p));
      for (let i = 0; i < 100 && !watch.loads.some((l) => l.running === 1); i++)
        await new Promise((r) => setTimeout(r, 100));
      let waiter: ChildProcess | undefined;
      const queued = cli([agent], ['--', 'echo never'], (p) => (waiter = p));
      for (let i = 0; i < 100 && !watch.loads.some((l) => l.queued === 1); i++)
        await new Promise((r) => setTimeout(r, 100));
      assert.ok(
        watch.loads.some((l) => l.queued === 1),
        'the second run never queued at the agent',
      );
      waiter?.kill('SIGINT');
      const r1 = await queued;
      assert.equal(r1.code, 130, r1.stderr);
      assert.doesNotMatch(r1.stdout, /never/);
      for (let i = 0; i < 50 && watch.loads.at(-1)?.queued !== 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      assert.equal(watch.loads.at(-1)?.queued, 0, 'the cancelled run still waits at the agent');
      hogProc?.kill('SIGINT');
      assert.equal((await hog).code, 130);
    } finally {
      watch.ws.close();
      fake.close();
      await agent.stop();
    }
  });
});
