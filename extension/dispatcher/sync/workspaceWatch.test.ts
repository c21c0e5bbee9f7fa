import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdirSync, readFile, renameSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { TempDir } from '../../../test/helpers/gitRepo';
import { git, initRepo, makeFixtureRepo, tempDir, writeFile } from '../../../test/helpers/gitRepo';
import type { WatchFn, Watcher } from './folderWatch';
import { watchFolder } from './folderWatch';
import type { PrepareOptions } from './prepare';
import { prepareWorkspaceAt } from './prepare';
import type { PrepareRoute, WatchedPrepared, WorkspaceWatchesOptions } from './workspaceWatch';
import { WorkspaceWatches } from './workspaceWatch';

/** Records what a WorkspaceWatches watches, and lets a test break a watcher. */
function recordingWatch(): {
  watch: WatchFn;
  folders: string[];
  live: Set<Watcher & EventEmitter>;
} {
  const folders: string[] = [];
  const live = new Set<Watcher & EventEmitter>();
  const watch: WatchFn = (folder, listener) => {
    const real = watchFolder(folder, listener) as Watcher & EventEmitter;
    folders.push(folder);
    live.add(real);
    const close = real.close.bind(real);
    real.close = () => {
      live.delete(real);
      close();
    };
    return real;
  };
  return { watch, folders, live };
}

describe('sync workspaceWatch', function () {
  this.timeout(20_000);
  let tmp: TempDir;
  let root: string;
  let watches: WorkspaceWatches;
  let cacheCount = 0;
  /** A fresh hash cache each call: the truth to compare with, prepared from nothing. */
  const fresh = (): NodeJS.ProcessEnv => ({
    ...process.env,
    XDG_CACHE_HOME: join(tmp.path, `cache-${cacheCount++}`),
  });
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, XDG_CACHE_HOME: join(tmp.path, 'kept') });

  function start(options: WorkspaceWatchesOptions = {}): WorkspaceWatches {
    watches = new WorkspaceWatches({ platform: 'linux', ...options });
    return watches;
  }

  async function prepare(
    route?: PrepareRoute | PrepareRoute[],
    options: PrepareOptions = {},
    at = root,
  ): Promise<WatchedPrepared> {
    const p = await watches.prepare(at, { ...options, env: env() });
    const truth = await prepareWorkspaceAt(at, { ...options, env: fresh() });
    assert.deepEqual(p.workspace.entries, truth.workspace.entries);
    assert.equal(p.workspace.digest, truth.workspace.digest);
    assert.deepEqual(p.skipped, truth.skipped);
    if (route !== undefined) assert.ok([route].flat().includes(p.route), `route ${p.route}`);
    return p;
  }

  const paths = (p: WatchedPrepared): string[] => p.workspace.entries.map((e) => e.path);

  beforeEach(() => {
    tmp = tempDir('watch');
    root = makeFixtureRepo(tmp.path);
  });
  afterEach(() => {
    watches?.close();
    tmp.dispose();
  });

  it('returns the same preparation when nothing changed', async () => {
    start();
    const first = await prepare('rewatch');
    const again = await prepare('unchanged');
    assert.equal(again.workspace, first.workspace);
    assert.equal(again.examined, 0);
    assert.ok(paths(first).includes('notes/untracked.md'));
    assert.ok(!paths(first).includes('gone.txt') && !paths(first).includes('debug.log'));
  });

  it('notices an edited file and examines only it', async () => {
    start();
    const first = await prepare('rewatch');
    writeFile(root, 'src/main.ts', 'console.log("edited");\n');
    const edited = await prepare('update');
    assert.notEqual(edited.workspace.digest, first.workspace.digest);
    assert.equal(edited.examined, 1);
    assert.equal(first.examined, 9); // gone.txt too: listed, found missing
    // An agent that holds the first manifest is sent only the edit.
    assert.deepEqual(edited.workspace.bases, [first.workspace.entriesDigest]);
    const delta = edited.workspace.deltaFrom?.(first.workspace.entriesDigest);
    assert.deepEqual(
      delta?.changed.map((e) => e.path),
      ['src/main.ts'],
    );
    assert.deepEqual(delta?.removed, []);
    writeFile(root, 'run.sh', '#!/bin/sh\necho other\n', 0o700);
    await prepare('update');
    await prepare('unchanged');
  });

  it('notices a change made just before prepare, from an I/O callback too', async () => {
    start();
    await prepare('rewatch');
    for (let i = 0; i < 10; i++) {
      writeFile(root, 'src/main.ts', `console.log(${i});\n`);
      await prepare('update');
    }
    // An RPC request arrives in the poll phase, as an fs callback does.
    for (let i = 0; i < 5; i++) {
      const p = await new Promise<WatchedPrepared>((res, rej) =>
        readFile(join(root, 'run.sh'), () => {
          writeFile(root, 'src/util/strings.ts', `export const s = ${i};\n`);
          writeFile(root, `notes/new-${i}.md`, `note ${i}\n`);
          watches.prepare(root, { env: env() }).then(res, rej);
        }),
      );
      assert.ok(paths(p).includes(`notes/new-${i}.md`));
      const truth = await prepareWorkspaceAt(root, { env: fresh() });
      assert.equal(p.workspace.digest, truth.workspace.digest);
    }
  });

  it('notices a new untracked file, and lets a new ignored one be', async () => {
    start();
    await prepare('rewatch');
    writeFile(root, 'src/new.ts', 'export {};\n');
    const added = await prepare('relist');
    assert.ok(paths(added).includes('src/new.ts'));
    // Listed again, but only the new file examined: the others had no event.
    assert.equal(added.examined, 1);
    writeFile(root, 'src/trace.log', 'ignored\n');
    assert.ok(!paths(await prepare('relist')).includes('src/trace.log'));
    // Known to be ignored now: writing it again changes nothing.
    writeFile(root, 'src/trace.log', 'ignored, longer\n');
    await prepare('unchanged');
    // An ignored folder made again, as a build does: nothing to list or watch.
    rmSync(join(root, 'build'), { recursive: true });
    writeFile(root, 'build/out.js', 'rebuilt\n');
    await prepare('unchanged');
  });

  it('notices a deleted file, tracked or not, and a rename', async () => {
    start();
    await prepare('rewatch');
    unlinkSync(join(root, 'src/main.ts'));
    assert.ok(!paths(await prepare('update')).includes('src/main.ts'));
    unlinkSync(join(root, 'notes/untracked.md'));
    await prepare('update');
    renameSync(join(root, 'run.sh'), join(root, 'start.sh'));
    assert.ok(paths(await prepare()).includes('start.sh'));
    renameSync(join(root, 'src'), join(root, 'lib'));
    const moved = await prepare('rewatch');
    assert.ok(paths(moved).includes('lib/util/strings.ts'));
    // The moved folder is watched under its new name.
    writeFile(root, 'lib/util/strings.ts', 'export const s = 2;\n');
    await prepare('update');
  });

  it('notices a .gitignore change, and watches what it no longer ignores', async () => {
    start();
    await prepare('rewatch');
    writeFile(root, '.gitignore', '*.log\n');
    assert.ok(paths(await prepare('rewatch')).includes('build/nested/deep.js'));
    writeFile(root, 'build/nested/deeper.js', 'now synced\n');
    assert.ok(paths(await prepare('relist')).includes('build/nested/deeper.js'));
  });

  it('notices git add -f and git rm --cached (the index)', async () => {
    start();
    await prepare('rewatch');
    git(root, 'add', '-f', 'debug.log', 'build/out.js');
    const added = await prepare('relist');
    assert.ok(paths(added).includes('debug.log') && paths(added).includes('build/out.js'));
    // A tracked file in an ignored folder is watched too.
    writeFile(root, 'build/out.js', 'rebuilt\n');
    await prepare('update');
    git(root, 'rm', '-q', '--cached', 'debug.log');
    assert.ok(!paths(await prepare('relist')).includes('debug.log'));
  });

  it('follows symlinks changing, and a file becoming a folder', async () => {
    start();
    await prepare('rewatch');
    unlinkSync(join(root, 'link-in'));
    symlinkSync('run.sh', join(root, 'link-in'));
    await prepare('relist');
    unlinkSync(join(root, 'link-out'));
    writeFile(root, 'link-out', 'a file now\n');
    await prepare('relist');
    unlinkSync(join(root, 'run.sh'));
    writeFile(root, 'run.sh/inside.sh', 'a folder now\n');
    await prepare('rewatch');
  });

  it('does not watch ignored folders, and stays within its bound', async () => {
    const rec = recordingWatch();
    writeFile(root, '.gitignore', '*.log\nbuild/\nnode_modules/\n');
    for (let i = 0; i < 50; i++) writeFile(root, `node_modules/m${i}/index.js`, `${i}\n`);
    start({ watch: rec.watch });
    await prepare('rewatch');
    assert.ok(rec.folders.includes(join(root, 'src/util')));
    assert.ok(!rec.folders.some((f) => f.includes('node_modules') || f.includes('build')));
    watches.close();
    assert.equal(rec.live.size, 0);
    start({ maxFolders: 3 });
    await prepare('unwatched');
    writeFile(root, 'src/main.ts', 'still seen\n');
    await prepare('unwatched');
    watches.close();
    // Watches are shared among workspaces: the second one finds none left.
    const other = join(tmp.path, 'other');
    writeFile(other, 'a.txt', 'a');
    // The first takes 6: its root, src, src/util, notes, and git's folder and info.
    start({ maxWatches: 6 });
    await prepare('rewatch');
    await prepare('unwatched', {}, other);
    writeFile(other, 'b.txt', 'b');
    await prepare('unwatched', {}, other);
  });

  it('falls back to full preparations when a watcher cannot be made, or off Linux', async () => {
    start({
      watch: () => {
        throw Object.assign(new Error('ENOSPC: no watches left'), { code: 'ENOSPC' });
      },
    });
    await prepare('unwatched');
    writeFile(root, 'src/main.ts', 'seen without a watch\n');
    writeFile(root, 'notes/more.md', 'and this\n');
    assert.ok(paths(await prepare('unwatched')).includes('notes/more.md'));
    watches.close();
    start({ platform: 'darwin' });
    await prepare('unwatched');
  });

  it('watches again after a watcher error', async () => {
    const rec = recordingWatch();
    start({ watch: rec.watch });
    await prepare('rewatch');
    const [some] = rec.live;
    some?.emit('error', new Error('simulated overflow'));
    await prepare('rewatch');
    await prepare('unchanged');
  });

  it('walks a folder outside git, and a subfolder of a work tree sees the top .gitignore', async () => {
    start();
    const plain = join(tmp.path, 'plain');
    writeFile(plain, 'a.txt', 'a');
    await prepare('rewatch', {}, plain);
    writeFile(plain, 'sub/b.txt', 'b');
    await prepare('rewatch', {}, plain);
    writeFile(plain, 'sub/c.txt', 'c');
    await prepare('relist', {}, plain);
    const sub = join(root, 'src');
    writeFile(sub, 'x.tmp', 'temp\n');
    assert.ok(paths(await prepare('rewatch', {}, sub)).includes('x.tmp'));
    writeFile(root, '.gitignore', '*.log\nbuild/\n*.tmp\n');
    assert.ok(!paths(await prepare('rewatch', {}, sub)).includes('x.tmp'));
  });

  it('keeps options apart, and forgets a workspace left idle', async () => {
    start({ idleMs: 1000 });
    await prepare('rewatch');
    await prepare('rewatch', { exclude: ['src'] });
    await prepare('rewatch', { include: ['build/**'] });
    writeFile(root, 'build/new.js', 'included\n');
    assert.ok(paths(await prepare('relist', { include: ['build/**'] })).includes('build/new.js'));
    assert.equal(watches.size, 3);
    while (watches.size > 0) await new Promise((r) => setTimeout(r, 100));
    watches.close();
    const rec = recordingWatch();
    start({ maxWorkspaces: 1, watch: rec.watch });
    await prepare('rewatch');
    const firstWatches = rec.live.size;
    await prepare('rewatch', { exclude: ['src'] });
    // The first was let go, its watches closed.
    assert.deepEqual([watches.size, rec.live.size], [1, firstWatches]);
  });

  it('refuses a missing root, and watches it once it is there', async () => {
    start();
    const later = join(tmp.path, 'later');
    await assert.rejects(watches.prepare(later, { env: env() }), /is not a folder/);
    writeFile(later, 'a.txt', 'a');
    await prepare('rewatch', {}, later);
    await prepare('unchanged', {}, later);
  });

  it('prepares a workspace whose root was replaced', async () => {
    start();
    await prepare('rewatch');
    renameSync(root, join(tmp.path, 'old'));
    mkdirSync(root);
    initRepo(root);
    writeFile(root, 'other.txt', 'another checkout\n');
    assert.deepEqual(paths(await prepare('rewatch')), ['other.txt']);
    rmSync(join(tmp.path, 'old'), { recursive: true });
  });
});
