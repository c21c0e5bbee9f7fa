import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readlinkSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { prepareThroughWatcher, stopWatcher } from '../../cli/watcherClient';
import type { StartedAgent } from '../helpers/agentProcess';
import { CLI_BIN, newKeyFile, runOn, startAgent, tempDir } from '../helpers/agentProcess';
import { writeFile } from '../helpers/gitRepo';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("the CLI's workspace watcher @integration", function () {
  this.timeout(120_000);
  const dir = tempDir();
  const ws = join(dir.path, 'project');
  const cacheHome = join(dir.path, 'cache');
  const socketDir = join(cacheHome, 'octask', 'watcher');
  /** A user's shell: CI unset, watcher allowed, this test's own cache. */
  const env = { XDG_CACHE_HOME: cacheHome, OCTASK_NO_WATCHER: '0', CI: '' };
  let keyFile: string;
  let agent: StartedAgent;

  /** `octask run --verbose` of `command` in the workspace: its output, and who prepared the workspace. */
  const run = async (
    command: string,
    extraEnv: NodeJS.ProcessEnv = {},
  ): Promise<{ stdout: string; by: string }> => {
    const r = await runOn(agent.address, keyFile, ['--workspace', ws, '--verbose', '--', command], {
      cwd: ws,
      env: { ...env, ...extraEnv },
    });
    assert.equal(r.code, 0, r.stderr);
    const by = /workspace prepared by="([^"]*)"/.exec(r.stderr)?.[1];
    assert.ok(by, `no "workspace prepared" line in:\n${r.stderr}`);
    return { stdout: r.stdout, by };
  };
  /** The watcher's pids, found by the workspace path its first request named. */
  const watcherPids = (): number[] => {
    try {
      return execFileSync('pgrep', ['-f', `${CLI_BIN} watcher --prime .*${ws}`], {
        encoding: 'utf8',
      })
        .trim()
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      return [];
    }
  };
  const listening = (): Promise<boolean> =>
    stopWatcher({ ...process.env, ...env }, { probeOnly: true });
  const until = async (what: string, test: () => Promise<boolean> | boolean): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      if (await test()) return;
      await sleep(25);
    }
    assert.fail(`timed out waiting until ${what}`);
  };

  before(async () => {
    keyFile = newKeyFile(dir.path).path;
    writeFile(ws, 'src/a.txt', 'one\n');
    writeFile(ws, 'src/b.txt', 'two\n');
    agent = await startAgent({ keyFile, name: 'watched' });
  });
  after(async () => {
    await stopWatcher({ ...process.env, ...env });
    for (const pid of watcherPids()) process.kill(pid, 'SIGKILL');
    await agent?.stop();
    dir.cleanup();
  });

  it('is started by the first run; the next runs are prepared by it, and see each edit', async () => {
    const first = await run('cat src/a.txt', { OCTASK_SOMETHING_SECRET: 'x' });
    assert.equal(first.stdout, 'one\n');
    assert.equal(first.by, 'this run (watcher: none running)');
    await until('the watcher listens', listening);
    const [pid] = watcherPids();
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    assert.deepEqual(
      environ.filter((v) => v.startsWith('OCTASK_')),
      [],
      "none of Octask's variables (a key, say) reach the watcher",
    );
    assert.notEqual(
      readlinkSync(`/proc/${pid}/cwd`),
      ws,
      'it does not hold the workspace as its folder',
    );
    assert.equal(statSync(socketDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(socketDir, 'socket')).mode & 0o077, 0, 'only its user may connect');

    const second = await run('cat src/a.txt');
    assert.equal(second.stdout, 'one\n');
    assert.match(
      second.by,
      /^the watcher \(route (unchanged|update|relist|rewatch), \d+ ms there\)$/,
    );

    writeFile(ws, 'src/a.txt', 'one, edited\n');
    writeFile(ws, 'src/new.txt', 'new\n');
    const edited = await run('cat src/a.txt src/new.txt');
    assert.equal(edited.stdout, 'one, edited\nnew\n');
    assert.match(edited.by, /^the watcher /);
    const synced = agent.logs.filter((l) => l.msg === 'workspace synced');
    assert.equal(
      synced.at(-1)?.delta,
      2,
      'only the two changed entries were sent: the watcher had the manifest the agent offered as its base',
    );

    // An agent with no copy needs the whole manifest, which the watcher sends only when asked
    // (and a setup's key needs the entries before the task is placed).
    const fresh = await startAgent({ keyFile, name: 'fresh' });
    try {
      const r = await runOn(
        fresh.address,
        keyFile,
        [
          '--workspace',
          ws,
          '--verbose',
          '--setup',
          'echo set up > .setup-ran',
          '--',
          'cat src/a.txt .setup-ran',
        ],
        { cwd: ws, env },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'one, edited\nset up\n');
      assert.match(r.stderr, /workspace prepared by="the watcher/);
      const full = fresh.logs.filter((l) => l.msg === 'workspace synced');
      assert.deepEqual(
        full.map((l) => [l.files, l.delta]),
        [[3, undefined]],
      );
    } finally {
      await fresh.stop();
    }
    assert.equal(watcherPids().length, 1);
  });

  it('steps down for a run of another build, which starts its own', async () => {
    assert.equal(watcherPids().length, 1);
    const [old] = watcherPids();
    // A rebuilt or updated CLI: the program file's mtime is part of the build.
    const { atime, mtime } = statSync(CLI_BIN);
    utimesSync(CLI_BIN, atime, new Date(mtime.getTime() + 1000));
    const r = await run('cat src/b.txt');
    assert.equal(r.stdout, 'two\n');
    assert.equal(r.by, 'this run (watcher: another build of octask)');
    await until('the old watcher left and a new one listens', async () => {
      const pids = watcherPids();
      return pids.length === 1 && pids[0] !== old && (await listening());
    });
    assert.match((await run('cat src/b.txt')).by, /^the watcher /);
  });

  it('is replaced when it died and left its socket behind', async () => {
    const [pid] = watcherPids();
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await until('it is gone', () => watcherPids().length === 0);
    assert.ok(existsSync(join(socketDir, 'socket')), 'the dead watcher left its socket');
    assert.equal((await run('true')).by, 'this run (watcher: none running)');
    await until('a new watcher listens', listening);
    assert.match((await run('true')).by, /^the watcher /);
  });

  it('is not asked by a run with other git settings, nor by one with OCTASK_NO_WATCHER=1', async () => {
    const other = await run('true', { GIT_CONFIG_GLOBAL: '/dev/null' });
    assert.match(other.by, /^this run \(watcher: started with other git settings/);
    const off = await run('true', { OCTASK_NO_WATCHER: '1' });
    assert.equal(off.by, 'this run');
    const ci = await run('true', { CI: 'true' });
    assert.equal(ci.by, 'this run');
  });

  it('a run whose watcher left before it sent the manifest reads the workspace itself, unless it changed', async () => {
    await run('true');
    await until('the watcher listens', listening);
    const flags = { include: [], exclude: [], preserve: [] };
    const fullEnv = { ...process.env, ...env };
    // Asked from this process as the CLI asks: a watcher answers only its own build.
    const askAsCli = async (): ReturnType<typeof prepareThroughWatcher> => {
      const mocha = process.argv[1] ?? '';
      process.argv[1] = CLI_BIN;
      try {
        return await prepareThroughWatcher(ws, flags, fullEnv);
      } finally {
        process.argv[1] = mocha;
      }
    };
    const asked = (await askAsCli()).prepared?.workspace;
    assert.ok(asked?.loadEntries, 'the watcher answered with a digest, entries to load');
    assert.throws(() => asked.entries, /read before it was loaded/);
    await stopWatcher(fullEnv);
    await until('it is gone', () => watcherPids().length === 0);
    await asked.loadEntries();
    assert.deepEqual(
      asked.entries.map((e) => e.path),
      ['src/a.txt', 'src/b.txt', 'src/new.txt'],
    );

    await run('true');
    await until('a watcher listens again', listening);
    const before = (await askAsCli()).prepared?.workspace;
    await stopWatcher(fullEnv);
    await until('it is gone again', () => watcherPids().length === 0);
    writeFile(ws, 'src/b.txt', 'two, edited since\n');
    await assert.rejects(
      () => before?.loadEntries?.() ?? Promise.resolve(),
      /changed while it was being synced/,
    );
    // The next test finds a watcher, as after the others.
    await run('true');
    await until('the watcher listens once more', listening);
  });

  it('octask watcher --stop makes it leave; a socket folder others can enter is not used', async () => {
    assert.ok(await listening());
    await stopWatcher({ ...process.env, ...env });
    await until('it is gone', () => watcherPids().length === 0);
    chmodSync(socketDir, 0o755);
    const r = await run('true');
    assert.equal(r.by, 'this run (watcher: no private folder for its socket)');
    await sleep(300);
    assert.deepEqual(watcherPids(), [], 'none started where another user could reach it');
    chmodSync(socketDir, 0o700);
  });
});
