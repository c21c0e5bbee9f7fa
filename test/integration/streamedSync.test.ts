import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, startAgent, tempDir } from '../helpers/agentProcess';
import { writeFile } from '../helpers/gitRepo';
import type { ClusterKey } from '../../shared/clusterKey';
import { silentLogger } from '../../shared/logger';
import type { SyncInfo, TaskInfo } from '../../shared/rpc';
import { Dispatcher } from '../../extension/dispatcher/dispatcher';
import { prepareWorkspaceAt } from '../../extension/dispatcher/sync/prepare';
import type { PreparedWorkspace } from '../../extension/dispatcher/sync/preparedWorkspace';
import { WorkspaceFeed } from '../../extension/dispatcher/sync/workspaceFeed';
import { WorkspaceWatches } from '../../extension/dispatcher/sync/workspaceWatch';

const FILES = 600;

/**
 * The dispatcher's side of a streamed first sync, with a real agent over
 * TLS: the dispatcher is online before the workspace is hashed, so the
 * stream is certain to begin while hashing goes on.
 */
describe('a first sync streamed while the workspace is hashed @integration', function () {
  this.timeout(60_000);
  const dir = tempDir();
  const root = join(dir.path, 'project');
  const env = { XDG_CACHE_HOME: join(dir.path, 'cache') };
  let key: ClusterKey;
  let keyFile: string;
  let agent: StartedAgent;
  let dispatcher: Dispatcher;

  before(async () => {
    ({ path: keyFile, key } = newKeyFile(dir.path));
    for (let i = 0; i < FILES; i++)
      writeFile(root, `m${i % 12}/f${i}.txt`, `file ${i}\n`.repeat((i % 5) + 1));
    writeFile(root, 'same/one.txt', 'twice\n');
    writeFile(root, 'same/two.txt', 'twice\n');
    agent = await startAgent({ keyFile, name: 'streamed' });
    dispatcher = new Dispatcher({ key, agents: [agent.address], logger: silentLogger });
    dispatcher.start();
    await dispatcher.settled();
    assert.equal(dispatcher.agents()[0]?.status, 'online');
  });
  after(async () => {
    dispatcher?.close();
    await agent?.stop();
    dir.cleanup();
  });

  /** Runs `command` through `d` in the copy of `workspace`; its output, and the sync it waited for. */
  async function runIn(
    d: Dispatcher,
    workspace: PreparedWorkspace,
    command: string,
  ): Promise<{ output: string; sync: SyncInfo | undefined; task: TaskInfo }> {
    let output = '';
    let sync: SyncInfo | undefined;
    const offSync = d.on('sync', (s) => (sync = s));
    const [submitted] = d.submit({ command }, workspace);
    assert.ok(submitted);
    const offOutput = d.on('output', (c) => {
      if (c.task === submitted.id) output += Buffer.from(c.data).toString();
    });
    const task = await new Promise<TaskInfo>((resolve) => {
      const off = d.on('task', (t) => {
        if (t.id === submitted.id && t.status !== 'pending' && t.status !== 'running') {
          off();
          resolve(t);
        }
      });
    });
    offSync();
    offOutput();
    return { output, sync, task };
  }

  /** `test` with an agent of its own (no copy yet) and a dispatcher online to it, both gone after. */
  async function withFreshAgent(
    name: string,
    test: (fresh: StartedAgent, d: Dispatcher) => Promise<void>,
  ): Promise<void> {
    const fresh = await startAgent({ keyFile, name });
    const d = new Dispatcher({ key, agents: [fresh.address], logger: silentLogger });
    try {
      d.start();
      await d.settled();
      await test(fresh, d);
    } finally {
      d.close();
      await fresh.stop();
    }
  }

  /** The agent's one layout of a streamed sync, checked to be one. */
  function streamedLayout(of: StartedAgent): Record<string, unknown> | undefined {
    const synced = of.logs.filter((l) => l.msg === 'workspace synced');
    assert.ok(Number(synced[0]?.streamed) >= 1, JSON.stringify(synced));
    return synced[0];
  }

  it("writes the files on the agent while they are hashed; the task's sync waits for it and takes its figures", async () => {
    const feed = new WorkspaceFeed();
    dispatcher.streamTo(feed, { command: 'x', target: { kind: 'all' } });
    const { workspace } = await prepareWorkspaceAt(root, { env, feed, keepBytes: 1 << 26 });
    const { output, sync, task } = await runIn(
      dispatcher,
      workspace,
      'cat m0/f0.txt m11/f599.txt same/two.txt',
    );
    assert.equal(task.status, 'completed', JSON.stringify(task));
    assert.equal(output, `file 0\n${'file 599\n'.repeat(5)}twice\n`);
    const synced = agent.logs.filter((l) => l.msg === 'workspace synced');
    assert.equal(synced.length, 1, 'one sync laid the copy out');
    assert.ok(Number(synced[0]?.streamed) >= 1, `streamed: ${JSON.stringify(synced[0])}`);
    assert.equal(synced[0]?.files, FILES + 2);
    assert.equal(synced[0]?.asked, 0, 'every content came with its part, none was asked for');
    // Two paths of one content: sent once.
    assert.equal(sync?.files, FILES + 2);
    assert.equal(sync?.filesSent, FILES + 1);
    assert.equal(sync?.error, null);
  });

  it('streams to a new agent from a warm hash cache too, reading the files it did not hash', () =>
    withFreshAgent('fresh', async (fresh, d) => {
      const feed = new WorkspaceFeed();
      d.streamTo(feed, { command: 'x' });
      const { workspace } = await prepareWorkspaceAt(root, { env, feed });
      const { task } = await runIn(d, workspace, 'cat m5/f5.txt');
      assert.equal(task.status, 'completed', JSON.stringify(task));
      assert.equal(
        streamedLayout(fresh)?.asked,
        0,
        'the small files were read and sent as they were listed',
      );
    }));

  it("streams the editor's first preparation of a watched workspace as well", () =>
    withFreshAgent('editor', async (fresh, d) => {
      const watches = new WorkspaceWatches();
      try {
        const first = new WorkspaceFeed();
        d.streamTo(first, { command: 'x' });
        const { workspace } = await watches.prepare(root, { env, feed: first });
        assert.ok(first.ended && !(first.ended instanceof Error), 'a full hashing ends its feed');
        const { task } = await runIn(d, workspace, 'cat m7/f7.txt');
        assert.equal(task.status, 'completed', JSON.stringify(task));
        assert.equal(streamedLayout(fresh)?.asked, 0);
        // The next preparation hashes nothing again: its feed never opens.
        const next = new WorkspaceFeed();
        await watches.prepare(root, { env, feed: next });
        assert.equal(next.header, undefined);
      } finally {
        watches.close();
      }
    }));

  it('lays out nothing streamed for a run refused before its task is placed (a bad cwd)', () =>
    withFreshAgent('refused', async (fresh, d) => {
      const feed = new WorkspaceFeed();
      const spec = { command: 'true', cwd: 'no/such/dir' };
      d.streamTo(feed, spec);
      const { workspace } = await prepareWorkspaceAt(root, { env, feed });
      assert.throws(() => d.submit(spec, workspace), /no\/such\/dir/);
      // Everything but the last part went; the agent holds it staged, not laid out.
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.deepEqual(
        fresh.logs.filter((l) => l.msg === 'workspace synced'),
        [],
        'no layout for a refused run',
      );
      const copy = join(fresh.workdir, 'workspaces', workspace.id);
      assert.equal(existsSync(join(copy, 'tree')), false);
      d.close();
      // The connection gone, the agent drops what it staged.
      const staged = join(copy, 'incoming');
      for (let i = 0; i < 100 && existsSync(staged) && readdirSync(staged).length > 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(readdirSync(staged), []);
    }));

  it('streams nothing to an agent that has a copy: the sync goes as usual, by check', async () => {
    const feed = new WorkspaceFeed();
    dispatcher.streamTo(feed, { command: 'x', target: { kind: 'all' } });
    const before = agent.logs.length;
    const { workspace } = await prepareWorkspaceAt(root, { env, feed });
    const { task, sync } = await runIn(dispatcher, workspace, 'true');
    assert.equal(task.status, 'completed');
    assert.equal(sync?.filesSent, 0);
    const since = agent.logs.slice(before).map((l) => l.msg);
    assert.ok(since.includes('workspace checked'), since.join(', '));
    assert.ok(!since.includes('workspace synced'), 'nothing laid out again');
  });
});
