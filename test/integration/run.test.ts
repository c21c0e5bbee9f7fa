import assert from 'node:assert/strict';
import { OCTASK_VERSION } from '../../shared/version';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runCli, startAgent, tempDir } from '../helpers/agentProcess';

interface RunJson {
  tasks: Array<{
    id: string;
    agent: string;
    status: string;
    exitCode: number | null;
    shard: number | null;
    attempts: number;
    durationMs: number;
  }>;
}

describe('octask run against real agents @integration', function () {
  this.timeout(60_000);
  const dir = tempDir();
  let keyFile: string;
  let a: StartedAgent;
  let b: StartedAgent;
  const base = (): string[] => [
    '--agent',
    a.address,
    '--agent',
    b.address,
    '--key-file',
    keyFile,
    '--no-mdns',
  ];

  before(async () => {
    keyFile = newKeyFile(dir.path).path;
    [a, b] = await Promise.all([
      startAgent({ keyFile, name: 'alpha', maxJobs: 2 }),
      startAgent({ keyFile, name: 'beta', maxJobs: 2 }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    dir.cleanup();
  });

  it('returns the remote exit code and keeps stdout and stderr apart', async () => {
    const r = await runCli(['run', ...base(), '--', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'out\n');
    assert.match(r.stderr, /^err$/m);
    const ok = await runCli(['run', ...base(), '--', 'true']);
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('streams output in order', async () => {
    const r = await runCli([
      'run',
      ...base(),
      '--',
      'i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3000);
    lines.forEach((line, i) => assert.equal(line, `line ${i}`));
  });

  it('streams output while the task still runs', async () => {
    let sawFirst = 0;
    let finished = 0;
    const r = await runCli(['run', ...base(), '--', 'echo first; sleep 1; echo second'], {
      onSpawn: (p) => {
        p.stdout?.on('data', (d: Buffer) => {
          if (!sawFirst && d.toString().includes('first')) sawFirst = Date.now();
        });
        p.once('exit', () => (finished = Date.now()));
      },
    });
    assert.equal(r.code, 0);
    assert.ok(
      sawFirst > 0 && finished - sawFirst >= 700,
      `first line arrived ${finished - sawFirst} ms before the end`,
    );
  });

  it('spreads shards over agents, with index and count in the environment', async () => {
    const r = await runCli([
      'run',
      ...base(),
      '--shards',
      '4',
      '--json',
      '--',
      'echo "shard=$OCTASK_SHARD_INDEX/$OCTASK_SHARD_COUNT"; sleep 0.3',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as RunJson;
    assert.equal(doc.tasks.length, 4);
    assert.deepEqual(doc.tasks.map((t) => t.shard).sort(), [0, 1, 2, 3]);
    assert.deepEqual(new Set(doc.tasks.map((t) => t.agent)), new Set(['alpha', 'beta']));
    for (let i = 0; i < 4; i++)
      assert.match(r.stderr, new RegExp(`^\\[(alpha|beta)#${i}\\] shard=${i}/4$`, 'm'));
    for (const t of doc.tasks) assert.equal(t.status, 'completed');
  });

  it("gives the first failing shard's code", async () => {
    const r = await runCli([
      'run',
      ...base(),
      '--shards',
      '3',
      '--',
      'exit $((OCTASK_SHARD_INDEX * 10))',
    ]);
    assert.equal(r.code, 10);
  });

  it('runs on every agent with --target all', async () => {
    const r = await runCli([
      'run',
      ...base(),
      '--target',
      'all',
      '--json',
      '--',
      'echo "on $OCTASK_AGENT_NAME"',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as RunJson;
    assert.deepEqual(doc.tasks.map((t) => t.agent).sort(), ['alpha', 'beta']);
    assert.match(r.stderr, /\[alpha\] on alpha/);
    assert.match(r.stderr, /\[beta\] on beta/);
  });

  it('runs on the named agent, and refuses an unknown name', async () => {
    const r = await runCli(['run', ...base(), '--target', 'beta', '--', 'echo $OCTASK_AGENT_NAME']);
    assert.equal(r.stdout, 'beta\n');
    const bad = await runCli(['run', ...base(), '--target', 'gamma', '--', 'true']);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /E_NO_SUCH_AGENT.*gamma/);
  });

  it('passes --env and retries a failed command with --retries', async () => {
    const flag = `${dir.path}/tried-once`;
    const r = await runCli([
      'run',
      ...base(),
      '--retries',
      '1',
      '--env',
      `FLAG=${flag}`,
      '--json',
      '--',
      'if [ -e "$FLAG" ]; then exit 0; fi; touch "$FLAG"; exit 9',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as RunJson;
    assert.equal(doc.tasks[0]?.attempts, 2);
  });

  it('reports the JSON document the issue promises', async () => {
    const r = await runCli(['run', ...base(), '--json', '--', 'echo visible-on-stderr; exit 4']);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /visible-on-stderr/);
    const doc = JSON.parse(r.stdout) as RunJson;
    const t = doc.tasks[0]!;
    assert.deepEqual(
      Object.keys(t).sort(),
      ['agent', 'attempts', 'durationMs', 'exitCode', 'id', 'shard', 'signal', 'status'].sort(),
    );
    assert.equal(t.status, 'failed');
    assert.equal(t.exitCode, 4);
  });

  it('lists the agents with their details', async () => {
    const r = await runCli(['agents', ...base(), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as {
      agents: Array<{ name: string; status: string; address: string; maxJobs: number; os: string }>;
    };
    assert.deepEqual(doc.agents.map((x) => x.name).sort(), ['alpha', 'beta']);
    for (const x of doc.agents) {
      assert.equal(x.status, 'online');
      assert.equal(x.maxJobs, 2);
      assert.equal(x.os, process.platform);
    }
    const table = await runCli(['agents', ...base()]);
    assert.match(
      table.stdout,
      /^NAME\s+ADDRESS\s+VERSION\s+OS\s+ARCH\s+CPUS\s+SLOTS\s+QUEUE\s+LOAD\s+BATTERY\s+STATUS$/m,
    );
    assert.match(
      table.stdout,
      new RegExp(`alpha\\s+127\\.0\\.0\\.1:\\d+\\s+${OCTASK_VERSION.replace(/\./g, '\\.')}\\s`),
    );
  });
});
