import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runCli, runOn, startAgent, tempDir } from '../helpers/agentProcess';
import type { TwoHostLan } from '../helpers/netns';
import { assertCanMakeNamespaces, createTwoHostLan, removeStaleNamespaces } from '../helpers/netns';
import {
  ancestors,
  marker,
  processesMatching,
  waitUntilGone,
  waitUntilRunning,
} from '../helpers/processes';
import { dispatcherHello, rawDial } from '../helpers/rawPeer';
import { startRpcDispatcher } from '../helpers/rpcDispatcher';
import type { ClusterKey } from '../../shared/clusterKey';
import { RpcMethod } from '../../shared/rpc';

const run = promisify(execFile);
/** Heartbeats of 1 s: a cut link is noticed in 3 s instead of 15. */
const FAST = { OCTASK_HEARTBEAT_MS: '1000' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `line 1` … `line N`, one per line: what the counting commands print. */
const lines = (n: number): string =>
  Array.from({ length: n }, (_, i) => `line ${i + 1}\n`).join('');
const counting = (n: number, pause: number, exit: number): string =>
  `i=1; while [ $i -le ${n} ]; do echo line $i; i=$((i+1)); sleep ${pause}; done; exit ${exit}`;

describe('tasks survive link cuts, killed agents and killed dispatchers @integration', function () {
  this.timeout(120_000);
  const dir = tempDir();
  let keyFile: string;
  let key: ClusterKey;
  before(() => ({ path: keyFile, key } = newKeyFile(dir.path)));
  after(() => dir.cleanup());

  describe('a link cut between two hosts (network namespaces)', () => {
    const NS_PREFIX = 'octsurv';
    let lan: TwoHostLan;
    let agent: StartedAgent;
    before(async () => {
      assertCanMakeNamespaces();
      await removeStaleNamespaces(new RegExp(`^${NS_PREFIX}-(\\d+)-[ab]$`));
      lan = await createTwoHostLan({
        prefix: `${NS_PREFIX}-${process.pid}`,
        ifaceStem: `os${process.pid}`,
        addressA: '198.51.100.31',
        addressB: '198.51.100.32',
      });
      agent = await startAgent({
        keyFile,
        name: 'far',
        bind: lan.a.address,
        maxJobs: 1,
        wrap: lan.a.wrap,
        env: FAST,
      });
    });
    after(async () => {
      await agent?.stop();
      await lan?.destroy();
    });

    const cut = (down: boolean) =>
      run('ip', ['-n', lan.a.ns, 'link', 'set', lan.a.iface, down ? 'down' : 'up']);

    /** Runs a counting task from host b, cuts the link `cutMs` into it for `downMs`. */
    async function throughCut(n: number, downMs: number, extra: string[] = []) {
      const result = runCli(
        [
          'run',
          '--agent',
          agent.address,
          '--key-file',
          keyFile,
          '--no-mdns',
          ...extra,
          '--',
          counting(n, 0.5, 3),
        ],
        { wrap: lan.b.wrap, env: FAST },
      );
      await sleep(2000);
      await cut(true);
      try {
        await sleep(downMs);
      } finally {
        await cut(false);
      }
      return result;
    }

    it('reattaches after 20 s down: the task ran once, every line once, its own exit code', async () => {
      const r = await throughCut(30, 20_000);
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stdout, lines(30));
      assert.match(r.stderr, /reconnecting to far…/);
      assert.match(r.stderr, /reconnected to far/);
      assert.doesNotMatch(r.stderr, /running again/);
    });

    it('keeps waiting past lost-after when no other agent could take the task, then reattaches', async () => {
      const r = await throughCut(16, 12_000, ['--lost-after', '4']);
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stdout, lines(16));
      assert.doesNotMatch(r.stderr, /running again/);
    });
  });

  describe('a killed or frozen agent (two agents on loopback)', () => {
    let pair: StartedAgent[] = [];
    beforeEach(async () => {
      pair = await Promise.all(
        ['one', 'two'].map((name) => startAgent({ keyFile, name, maxJobs: 1, env: FAST })),
      );
    });
    afterEach(async () => {
      for (const a of pair) if (a.proc.signalCode === 'SIGSTOP') a.proc.kill('SIGCONT');
      await Promise.all(pair.map((a) => a.stop()));
    });

    /** A command that runs long the first time (flag absent) and short on its rerun, then writes the marker. */
    function once(n: number, firstSec: number, againSec: number) {
      const flag = join(dir.path, `flag-${n}`);
      const mark = join(dir.path, `marker-${n}`);
      const command = `if [ -e ${flag} ]; then sleep ${againSec}; else touch ${flag}; sleep ${n}.${firstSec}; fi; echo done on $OCTASK_AGENT_NAME >> ${mark}`;
      return { command, mark, pattern: `^sleep ${n}.${firstSec}` };
    }
    const holderOf = (pid: number) => pair.find((a) => ancestors(pid).includes(a.proc.pid ?? -1));
    const cliRun = (command: string, extra: string[] = []) =>
      runCli(
        [
          'run',
          ...pair.flatMap((a) => ['--agent', a.address]),
          '--key-file',
          keyFile,
          '--no-mdns',
          ...extra,
          '--',
          command,
        ],
        { env: FAST },
      );

    it('SIGKILL: the task completes exactly once, elsewhere; the first attempt dies with its agent', async () => {
      const n = marker();
      const t = once(n, 4, 1);
      const result = cliRun(t.command);
      const [pid] = await waitUntilRunning(t.pattern);
      assert.ok(pid, 'the first attempt never started');
      const holder = holderOf(pid);
      assert.ok(holder, 'could not tell which agent runs the task');
      holder.proc.kill('SIGKILL');
      const r = await result;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /running again on (one|two) \(attempt 2\)/);
      // Long enough for the first attempt to have finished, had it survived.
      assert.deepEqual(
        await waitUntilGone(t.pattern, 3000),
        [],
        'the first attempt outlived its agent',
      );
      await sleep(1500);
      const marks = readFileSync(t.mark, 'utf8').trim().split('\n');
      assert.equal(marks.length, 1, `the command ran to its end ${marks.length} times`);
      assert.notEqual(marks[0], `done on ${holder.name}`);
    });

    it('SIGSTOP past lost-after, then SIGCONT: one completion; the abandoned attempt is cancelled', async () => {
      const n = marker();
      const t = once(n, 20, 12);
      const result = cliRun(t.command, ['--lost-after', '3']);
      const [pid] = await waitUntilRunning(t.pattern);
      assert.ok(pid, 'the first attempt never started');
      const holder = holderOf(pid);
      assert.ok(holder);
      holder.proc.kill('SIGSTOP');
      await sleep(9000);
      holder.proc.kill('SIGCONT');
      const r = await result;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /reconnecting to/);
      assert.match(r.stderr, /running again on/);
      assert.deepEqual(
        await waitUntilGone(t.pattern, 5000),
        [],
        'the abandoned attempt was not cancelled',
      );
      const marks = readFileSync(t.mark, 'utf8').trim().split('\n');
      assert.equal(marks.length, 1, `the command ran to its end ${marks.length} times`);
    });
  });

  it('a restarted editor dispatcher (SIGKILL) reattaches: the output is whole and the task ends once', async () => {
    const agent = await startAgent({ keyFile, name: 'steady', maxJobs: 1 });
    const stateDir = mkdtempSync(join(tmpdir(), 'octask-state-'));
    try {
      const first = await startRpcDispatcher({ key, agents: [agent.address], stateDir });
      const [task] = await first.submit({ command: counting(20, 0.2, 0) });
      assert.ok(task);
      while (!(first.output.get(task.id) ?? '').includes('line 5')) await sleep(50);
      await first.kill('SIGKILL');
      const second = await startRpcDispatcher({ key, agents: [agent.address], stateDir });
      const earlier = await second.rpc.sendRequest<Array<{ text: string }>>(RpcMethod.taskOutput, {
        id: task.id,
      });
      const final = await second.final(task.id);
      assert.equal(final.status, 'completed', JSON.stringify(final));
      const whole = earlier.map((c) => c.text).join('') + (second.output.get(task.id) ?? '');
      assert.equal(whole, lines(20));
      await second.kill('SIGTERM');
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
      await agent.stop();
    }
  });

  it('ends a setsid child that holds stdout open at the timeout, and the run ends then', async () => {
    const agent = await startAgent({ keyFile, name: 'strict', maxJobs: 1 });
    const n = marker();
    try {
      const started = Date.now();
      const r = await runOn(agent.address, keyFile, [
        '--timeout',
        '2',
        '--',
        `setsid sh -c 'sleep ${n}; echo late' & sleep 100`,
      ]);
      assert.equal(r.code, 124, r.stderr);
      assert.ok(Date.now() - started < 15_000, 'the escaped child kept the run going');
      assert.deepEqual(await waitUntilGone(`sleep ${n}`, 3000), []);
    } finally {
      await agent.stop();
    }
  });

  it('a restarted agent ends what its killed previous life left, and reports those tasks lost', async () => {
    const workdir = mkdtempSync(join(tmpdir(), 'octask-reap-'));
    const n = marker();
    let agent = await startAgent({ keyFile, name: 'phoenix', maxJobs: 1, workdir });
    try {
      const peer = await rawDial(agent.port, key);
      const hello = dispatcherHello({ id: `reaper-${n}` });
      peer.send(hello);
      assert.equal((await peer.next()).t, 'hello');
      peer.send({ t: 'run', task: 'orphan', command: `sleep ${n}`, env: {}, timeoutMs: 0 });
      const [sleeper] = await waitUntilRunning(`^sleep ${n}`);
      assert.ok(sleeper);
      // A task is recorded for reaping once it has run a moment (250 ms).
      const records = (): string[] =>
        existsSync(join(workdir, 'running')) ? readdirSync(join(workdir, 'running')) : [];
      for (let i = 0; i < 50 && records().length === 0; i++) await sleep(50);
      assert.equal(records().length, 1, 'the running task was never recorded');
      // Both die at once, as when Android kills the app: nobody ends the task now.
      const keepers = processesMatching('octask-keeper').filter((pid) =>
        processIsChildOf(pid, agent.proc.pid ?? -1),
      );
      assert.equal(keepers.length, 1, 'the agent should have one keeper');
      for (const pid of keepers) process.kill(pid, 'SIGKILL');
      agent.proc.kill('SIGKILL');
      await agent.exited;
      peer.ws.close();
      await sleep(500);
      assert.deepEqual(processesMatching(`^sleep ${n}`), [sleeper], 'the task should outlive both');
      agent = await startAgent({ keyFile, name: 'phoenix', maxJobs: 1, workdir });
      assert.deepEqual(
        await waitUntilGone(`^sleep ${n}`, 5000),
        [],
        'the restarted agent left the orphan running',
      );
      const back = await rawDial(agent.port, key);
      back.send(hello);
      const greeting = await back.next();
      assert.equal(greeting.t, 'hello');
      assert.deepEqual(greeting.t === 'hello' ? greeting.tasks : undefined, [
        { task: 'orphan', state: 'lost', seq: 0 },
      ]);
      back.ws.close();
    } finally {
      await agent.stop();
      rmSync(workdir, { recursive: true, force: true });
    }
  });
});

/** Whether `pid`'s parent is `parent` (the keeper is a direct child of its agent). */
function processIsChildOf(pid: number, parent: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return ppid === parent;
  } catch {
    return false;
  }
}
