import assert from 'node:assert/strict';
import type { AgentInfo, TaskInfo } from '../../shared/rpc';
import {
  agentDescription,
  agentDetails,
  agentIsOutdated,
  formatBytes,
  formatDuration,
  nameTasksIn,
  outputTitle,
  runDescription,
  runDuration,
  runLabel,
  runStatus,
  statusBarText,
  taskDescription,
  taskFailed,
} from './format';

const task: TaskInfo = {
  id: 't1',
  group: 'g',
  command: 'make',
  status: 'failed',
  agent: 'pi',
  shard: 1,
  shardCount: 3,
  exitCode: 2,
  signal: null,
  attempts: 1,
  queuedAt: 0,
  startedAt: 10,
  endedAt: 1510,
  durationMs: 1500,
  agentRoot: null,
  error: null,
  phase: 'final',
  ahead: null,
  previousAgent: null,
  retryReason: null,
};

describe('view text', () => {
  it('formats durations', () => {
    assert.equal(formatDuration(12), '12 ms');
    assert.equal(formatDuration(1500), '1.5 s');
    assert.equal(formatDuration(125_000), '2m 05s');
    assert.equal(formatBytes(752), '752 B');
    assert.equal(formatBytes(3 * 1024 * 1024 + 512 * 1024), '3.5 MiB');
  });

  it('describes a task by place, time and ending', () => {
    assert.equal(taskDescription(task), 'pi#1 · 1.5 s · exit 2');
    assert.equal(
      taskDescription({ ...task, status: 'running', durationMs: null, shardCount: 1 }, 2010),
      'pi · 2.0 s',
    );
    assert.equal(
      taskDescription({
        ...task,
        status: 'lost',
        agent: null,
        durationMs: null,
        error: { code: 'E_X', message: '' },
      }),
      'queued#1 · lost · E_X',
    );
  });

  const agent: AgentInfo = {
    id: 'a1',
    name: 'pi',
    address: '10.0.0.2:7879',
    status: 'busy',
    version: '0.1.0',
    protocol: 1,
    os: 'linux',
    arch: 'arm64',
    cpus: 4,
    memory: 4 * 1024 ** 3,
    running: 2,
    maxJobs: 4,
    queued: 0,
    loadAvg: null,
    freeMemory: null,
    battery: null,
    resting: false,
    label: 'pi',
    tags: [],
    source: 'listed',
    lastError: null,
  };

  it('describes an agent in a few words (status or slots), fit for a narrow side bar', () => {
    assert.equal(agentDescription(agent, '0.1.0'), '2/4 slots');
    assert.equal(agentDescription({ ...agent, status: 'online', running: 0 }), '0/4 slots');
    assert.equal(agentDescription({ ...agent, status: 'wrong_key', os: null }), 'wrong key');
    assert.equal(agentDescription({ ...agent, status: 'offline' }), 'offline');
    assert.equal(agentDescription(agent, '0.2.0'), '2/4 slots · older 0.1.0');
  });

  it("puts an agent's details in the tooltip, one a line, and says when it wants updating", () => {
    assert.deepEqual(agentDetails(agent, '0.1.0'), [
      'pi: busy',
      'address 10.0.0.2:7879 (listed)',
      'linux/arm64, 4 CPUs',
      '4.00 GiB memory',
      'octask-agent 0.1.0, protocol 1',
      'slots: 2 of 4 in use',
    ]);
    const old = agentDetails({ ...agent, tags: ['arm'], source: 'mdns' }, '0.10.0');
    assert.ok(old.includes('address 10.0.0.2:7879 (found by mDNS)'), old.join('\n'));
    assert.ok(old.includes('tags: arm'), old.join('\n'));
    assert.match(
      old.join('\n'),
      /octask-agent 0\.1\.0, protocol 1 \(older than this editor's 0\.10\.0/,
    );
    const refused = agentDetails({
      ...agent,
      status: 'wrong_key',
      version: null,
      os: null,
      lastError: { code: 'E_WRONG_KEY', message: 'refused' },
    });
    assert.equal(refused.at(-1), 'E_WRONG_KEY: refused');
    assert.equal(agentIsOutdated({ ...agent, version: null }, '9.9.9'), false);
    assert.equal(agentIsOutdated(agent, '0.1.0'), false);
  });

  it('shows what agents report live (queue, battery, load, free memory) in a word or a line', () => {
    const phone: AgentInfo = {
      ...agent,
      label: 'pi (2)',
      queued: 3,
      loadAvg: 1.5,
      freeMemory: 512 * 1024 ** 2,
      battery: { level: 41, charging: false },
    };
    assert.equal(agentDescription(phone), '2/4 slots · 3 waiting · 41%');
    const tip = agentDetails(phone);
    assert.equal(tip[0], 'pi (2): busy');
    for (const line of [
      'slots: 2 of 4 in use, 3 waiting',
      'load 1.50',
      '512.0 MiB memory free',
      'battery 41%',
    ])
      assert.ok(tip.includes(line), `${line} in\n${tip.join('\n')}`);
    const resting = { ...phone, status: 'resting' as const, resting: true };
    assert.equal(agentDescription(resting), 'resting · 41%');
    assert.ok(agentDetails(resting).includes('battery 41%: resting, taking no new work'));
  });

  it('names the status bar counts', () => {
    assert.equal(statusBarText(2, 0, 0), '$(vm) Octask: 2 agents');
    assert.equal(
      statusBarText(1, 3, 2),
      '$(vm) Octask: 1 agent · $(sync~spin) 3 running · $(clock) 2 queued',
    );
  });

  it('labels runs by task label, else a shortened command', () => {
    assert.equal(runLabel('npm test', 'unit tests'), 'unit tests');
    assert.equal(runLabel('npm test', 'npm test'), 'npm test');
    assert.equal(runLabel('npm   test\n  && echo done'), 'npm test…');
    const long = 'echo shard $OCTASK_SHARD_INDEX of $OCTASK_SHARD_COUNT && sleep 1 && make -j8 all';
    const short = runLabel(long);
    assert.equal(short.length, 48);
    assert.ok(short.endsWith('…') && long.startsWith(short.slice(0, -1)), short);
  });

  it('sums a run of shards: status, tally, wall time', () => {
    const shard = (n: number, over: Partial<TaskInfo>): TaskInfo => ({
      ...task,
      id: `t${n}`,
      shard: n,
      ...over,
    });
    const done = [
      shard(0, { status: 'completed', exitCode: 0, startedAt: 100, endedAt: 1100 }),
      shard(1, { status: 'failed', exitCode: 2, startedAt: 200, endedAt: 2600 }),
      shard(2, { status: 'completed', exitCode: 0, startedAt: 150, endedAt: 900 }),
    ];
    assert.equal(runStatus(done), 'failed');
    assert.equal(runDuration(done), 2500);
    assert.equal(runDescription(done), '3 shards · 2 passed, 1 failed · 2.5 s');
    const live = [
      shard(0, { status: 'running', endedAt: null, startedAt: 1000 }),
      shard(1, { status: 'pending', startedAt: null, endedAt: null }),
      shard(2, { status: 'completed', startedAt: 1000, endedAt: 1500 }),
    ];
    assert.equal(runStatus(live), 'running');
    assert.equal(runDescription(live, 4000), '3 shards · 1 running, 1 queued, 1 passed · 3.0 s');
    const onAll = done.map((t) => ({ ...t, shard: null, shardCount: 1, agent: `a${t.id}` }));
    assert.match(runDescription(onAll), /^3 agents · /);
    assert.equal(runStatus([shard(0, { status: 'cancelled' })]), 'cancelled');
    assert.equal(runDescription([done[1] as TaskInfo]), taskDescription(done[1] as TaskInfo));
    assert.equal(taskFailed(shard(0, { status: 'lost' })), true);
    assert.equal(taskFailed(shard(0, { status: 'cancelled' })), false);
  });

  it("titles an output document by the run's label, shard and agent", () => {
    assert.equal(outputTitle('unit tests', task), 'unit tests #1 (pi).log');
    assert.equal(
      outputTitle('echo a/b: "c"', { shard: null, shardCount: 1, agent: null }),
      'echo a b c.log',
    );
  });

  it('names tasks in log lines as the Tasks view does', () => {
    const names: Record<string, string> = { 'ede7fec4-2': '"unit tests" #2', ab12cd34: '"lint"' };
    const line = 'task ede7fec4-2 placed on desk; task ab12cd34 failed; task ffffffff lost';
    assert.equal(
      nameTasksIn(line, (id) => names[id]),
      '"unit tests" #2 placed on desk; "lint" failed; task ffffffff lost',
    );
    assert.equal(
      nameTasksIn('synced to pi: 3 of 4 files sent (1946 bytes) in 62 ms', () => undefined),
      'synced to pi: 3 of 4 files sent (1.9 KiB) in 62 ms',
    );
  });
});
