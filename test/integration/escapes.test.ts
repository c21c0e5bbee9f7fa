import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runCli, startAgent, tempDir } from '../helpers/agentProcess';
import { initRepo, writeFile } from '../helpers/gitRepo';
import type { RawPeer } from '../helpers/rawPeer';
import { dispatcherHello, rawDial } from '../helpers/rawPeer';
import type { ClusterKey } from '../../shared/clusterKey';
import { ErrorCode } from '../../shared/errors';
import type { ManifestEntry, Message } from '../../shared/protocol';
import { isInsideWorkspace } from '../../shared/workspacePath';

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Every symlink below `root`, as [path, target]; and whether each stays inside, as the OS resolves it. */
function linksLeavingTree(root: string): string[] {
  const leaving: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, path));
      if (st.isDirectory()) walk(path);
      else if (st.isSymbolicLink()) {
        const target = readlinkSync(join(root, path));
        const onDisk = (p: string): string | undefined => {
          const s = lstatSync(join(root, p), { throwIfNoEntry: false });
          return s?.isSymbolicLink() ? readlinkSync(join(root, p)) : undefined;
        };
        if (!isInsideWorkspace(path, target, onDisk)) leaving.push(`${path} -> ${target}`);
      }
    }
  };
  walk('');
  return leaving;
}

describe('nothing is written outside a workspace, on either side @integration', function () {
  this.timeout(60_000);
  const dir = tempDir();
  let key: ClusterKey;
  let keyFile: string;
  let agent: StartedAgent;

  before(async () => {
    ({ path: keyFile, key } = newKeyFile(dir.path));
    agent = await startAgent({ keyFile, name: 'escapes' });
  });
  after(async () => {
    await agent?.stop();
    dir.cleanup();
  });

  describe('the agent, given hostile manifests by a key holder', () => {
    let peer: RawPeer;
    let n = 0;
    beforeEach(async () => {
      peer = await rawDial(agent.port, key);
      peer.send(dispatcherHello());
      assert.equal((await peer.next()).t, 'hello');
    });
    afterEach(() => peer.ws.close());

    /** Sends one whole sync and returns the agent's final answer. */
    async function sync(workspace: string, entries: ManifestEntry[], bodies: string[] = []) {
      const id = `s${++n}`;
      const byHash = new Map(bodies.map((b) => [sha(b), b]));
      peer.send({ t: 'sync', sync: id, workspace, entries, preserve: [], last: true });
      for (;;) {
        const m: Message = await peer.next();
        if (m.t === 'syncNeed') {
          for (const hash of m.hashes) {
            const data = Buffer.from(byHash.get(hash) ?? '');
            peer.send({ t: 'blob', sync: id, hash, size: data.length, offset: 0, data });
          }
          continue;
        }
        if (m.t === 'syncDone' || m.t === 'syncFailed') return m;
      }
    }
    const file = (path: string, body: string): ManifestEntry => ({
      path,
      size: Buffer.byteLength(body),
      mode: 0o644,
      hash: sha(body),
    });
    const wsFolder = (ws: string): string => join(agent.workdir, 'workspaces', ws);

    for (const [what, first, second] of [
      [
        'the reported chain: a link laid earlier, then a link at the old temporary name',
        [{ path: 'a/b/c/d/up', link: '../../../..' }],
        [file('f', 'pwned'), { path: 'f.octask-tmp', link: 'a/b/c/d/up/../X' }],
      ],
      [
        'a deeper chain',
        [{ path: 'a/b/c/d/e/f/g/up', link: '../../../../../../..' }],
        [file('f', 'pwned'), { path: 'f.octask-tmp', link: 'a/b/c/d/e/f/g/up/../../X' }],
      ],
      [
        'a file below a folder link laid earlier',
        [
          { path: 'dl', link: 'a/b/c/d/up' },
          { path: 'a/b/c/d/up', link: '../../../..' },
        ],
        [file('dl/X', 'pwned')],
      ],
    ] as Array<[string, ManifestEntry[], ManifestEntry[]]>) {
      it(`writes nothing outside its copy: ${what}`, async () => {
        const ws = `esc${++n}`;
        const firstAnswer = await sync(ws, first);
        assert.equal(firstAnswer.t, 'syncDone', JSON.stringify(firstAnswer));
        const answer = await sync(ws, second, ['pwned']);
        // Above the copy's tree: the workspace's own folder, the workspaces folder, the workdir.
        for (const above of [wsFolder(ws), join(agent.workdir, 'workspaces'), agent.workdir]) {
          assert.equal(existsSync(join(above, 'X')), false, `X written in ${above}`);
        }
        if (answer.t === 'syncFailed') assert.equal(answer.code, ErrorCode.BadPath);
        assert.deepEqual(linksLeavingTree(join(wsFolder(ws), 'tree')), []);
      });
    }

    it('refuses the reported chain with E_BAD_PATH, naming the link', async () => {
      const ws = `esc${++n}`;
      assert.equal((await sync(ws, [{ path: 'a/b/c/d/up', link: '../../../..' }])).t, 'syncDone');
      const answer = await sync(
        ws,
        [file('f', 'pwned'), { path: 'f.octask-tmp', link: 'a/b/c/d/up/../../../../../X' }],
        ['pwned'],
      );
      assert.equal(answer.t, 'syncFailed');
      assert.ok(answer.t === 'syncFailed' && answer.code === ErrorCode.BadPath);
      assert.match(answer.t === 'syncFailed' ? answer.message : '', /f\.octask-tmp.*outside/);
    });

    it('writes nothing outside while a task swaps a folder for a link during the layout', async () => {
      const ws = `race${++n}`;
      const outside = join(dir.path, `outside-${n}`);
      mkdirSync(outside);
      const entries = Array.from({ length: 400 }, (_, i) =>
        file(`a/sub${i % 20}/f${i}`, `body ${i}`),
      );
      assert.equal((await sync(ws, [file('seed', 'x')], ['x'])).t, 'syncDone');
      // A layout waits for tasks of its own workspace (agent/copyUsers.ts), but a
      // task may write anywhere the agent can: this one runs in another copy and
      // flips a/ of this one between a real folder and a link to `outside`.
      const from = `racer-home${n}`;
      assert.equal((await sync(from, [file('seed', 'x')], ['x'])).t, 'syncDone');
      const task = `racer${n}`;
      peer.send({
        t: 'run',
        task,
        command: `cd ../../${ws}/tree && end=$(($(date +%s)+4)); while [ $(date +%s) -lt $end ]; do rm -rf a; ln -s ${outside} a; rm -f a; mkdir a; done`,
        env: {},
        timeoutMs: 20_000,
        workspace: from,
        cwd: '',
      });
      let answer: Message | undefined;
      for (let round = 0; round < 3; round++) {
        answer = await sync(
          ws,
          entries,
          entries.map((_, i) => `body ${i}`),
        );
      }
      for (;;) {
        const m = await peer.next();
        if (m.t === 'exit' && m.task === task) break;
      }
      assert.ok(answer);
      assert.deepEqual(readdirSync(outside), [], 'the layout wrote through the swapped-in link');
    });
  });

  describe('the dispatcher, bringing back artifacts a task made', () => {
    const repo = join(dir.path, 'project');
    before(() => {
      writeFile(repo, 'README', 'artifact escapes\n');
      initRepo(repo);
    });
    const run = (command: string) =>
      runCli(
        [
          'run',
          '--agent',
          agent.address,
          '--key-file',
          keyFile,
          '--no-mdns',
          '--workspace',
          repo,
          // Each case starts from a fresh copy: task-made links would stay otherwise (a checkout).
          '--clean',
          '--artifacts',
          'out/**',
          '--',
          command,
        ],
        { cwd: repo },
      );
    afterEach(() => rmSync(join(repo, 'out'), { recursive: true, force: true }));

    for (const [what, commands] of [
      [
        'the reported chain (a link to a folder above, then a link at the old temporary name)',
        [
          'mkdir -p out/a/b/c/d && ln -s ../../../.. out/a/b/c/d/up && ln -s a/b/c/d/up/../ESCAPED out/f.octask-tmp && echo pwned > out/f',
          'rm -rf out; mkdir -p out/a/b/c/d && ln -s ../../../.. out/a/b/c/d/up && ln -s a/b/c/d/up/../.. out/esc && echo x > out/g',
        ],
      ],
      [
        'a deeper chain',
        [
          'mkdir -p out/a/b/c/d && ln -s ../../../../.. out/a/b/c/d/up && ln -s a/b/c/d/up/../ESCAPED out/f.octask-tmp && echo pwned > out/f',
        ],
      ],
      [
        'two runs: a link that is harmless alone, then a link to its own folder',
        ['mkdir -p out && ln -s up/../../ESCAPED out/esc', 'mkdir -p out && ln -s . out/up'],
      ],
      ['an absolute link', ['mkdir -p out && ln -s /tmp out/abs && echo x > out/f']],
      [
        'a file below a folder link',
        ['mkdir -p out/real && ln -s ../.. out/dl && echo pwned > out/real/f; ln -s real out/r2'],
      ],
    ] as Array<[string, string[]]>) {
      it(`writes nothing outside the workspace and leaves no link out of it: ${what}`, async () => {
        let warned = '';
        for (const command of commands) {
          const r = await run(command);
          assert.equal(r.code, 0, r.stderr);
          warned += r.stderr;
        }
        assert.equal(
          existsSync(join(dir.path, 'ESCAPED')),
          false,
          'ESCAPED written next to the workspace',
        );
        assert.equal(existsSync(resolve(repo, '..', '..', 'ESCAPED')), false);
        assert.deepEqual(linksLeavingTree(repo), []);
        assert.match(warned, /warning: artifact \S+ not brought back/);
      });
    }

    it('still brings back ordinary files and links that stay inside', async () => {
      const r = await run(
        'mkdir -p out/lib && echo so > out/lib/libx.so.1 && ln -s libx.so.1 out/lib/libx.so',
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readlinkSync(join(repo, 'out/lib/libx.so')), 'libx.so.1');
      assert.doesNotMatch(r.stderr, /warning/);
    });
  });
});
