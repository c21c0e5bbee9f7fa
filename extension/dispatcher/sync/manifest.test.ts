import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ManifestEntry } from '../../../shared/manifest';
import type { TempDir } from '../../../test/helpers/gitRepo';
import {
  git,
  initRepo,
  makeFixtureRepo,
  symlink,
  tempDir,
  writeFile,
} from '../../../test/helpers/gitRepo';
import { listWorkspaceFiles } from './fileList';
import { HashCache } from './hashCache';
import { buildManifest } from './manifest';

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function fileEntry(root: string, path: string, mode: number): ManifestEntry {
  const content = readFileSync(join(root, path));
  return { path, size: content.length, mode, hash: sha256File(join(root, path)) };
}

describe('sync manifest', () => {
  let tmp: TempDir;
  let root: string;

  beforeEach(() => {
    tmp = tempDir('manifest');
    root = makeFixtureRepo(tmp.path);
  });
  afterEach(() => tmp.dispose());

  it('describes the git file set: files by content and mode, inside links, problems apart', async () => {
    const { files } = await listWorkspaceFiles(root, { source: 'git' });
    const cache = await HashCache.load(null);
    const m = await buildManifest(root, files, cache);
    assert.deepEqual(m.entries, [
      fileEntry(root, '.gitignore', 0o644),
      { path: 'link-in', link: 'src/main.ts' },
      fileEntry(root, 'notes/untracked.md', 0o644),
      fileEntry(root, 'run.sh', 0o755),
      fileEntry(root, 'src/main.ts', 0o644),
      fileEntry(root, 'src/util/strings.ts', 0o644),
    ]);
    assert.deepEqual(m.problems, [
      { path: 'link-abs', reason: 'is a symlink to "/etc/hostname", outside the workspace' },
      { path: 'link-out', reason: 'is a symlink to "../outside.txt", outside the workspace' },
    ]);
    assert.equal(m.files, 5);
    assert.equal(m.links, 1);
    const sizes = m.entries.map((e) => ('size' in e ? e.size : 0));
    assert.equal(
      m.bytes,
      sizes.reduce((a, b) => a + b, 0),
    );
  });

  it('keeps only permission bits, never setuid or sticky bits', async () => {
    writeFile(root, 'suid', 'x', 0o4755);
    writeFile(root, 'private', 'y', 0o600);
    const m = await buildManifest(root, ['suid', 'private'], await HashCache.load(null));
    assert.deepEqual(
      m.entries.map((e) => ('mode' in e ? [e.path, e.mode] : [])),
      [
        ['private', 0o600],
        ['suid', 0o755],
      ],
    );
  });

  it('refuses hostile or malformed paths with their reasons', async () => {
    const m = await buildManifest(
      root,
      ['../outside.txt', '/etc/passwd', '.git/config', 'src//main.ts', 'a\\b', 'run.sh'],
      await HashCache.load(null),
    );
    assert.deepEqual(
      m.entries.map((e) => e.path),
      ['run.sh'],
    );
    const reasons = Object.fromEntries(m.problems.map((p) => [p.path, p.reason]));
    assert.match(reasons['../outside.txt'] ?? '', /path has a "\.\." segment/);
    assert.match(reasons['/etc/passwd'] ?? '', /path is absolute/);
    assert.match(reasons['.git/config'] ?? '', /\.git/);
    assert.match(reasons['src//main.ts'] ?? '', /empty segment/);
    assert.match(reasons['a\\b'] ?? '', /backslash/);
  });

  it('refuses FIFOs, sockets-like specials and folders', async () => {
    execFileSync('mkfifo', [join(root, 'pipe')]);
    const m = await buildManifest(root, ['pipe', 'src', 'run.sh'], await HashCache.load(null));
    assert.deepEqual(
      m.entries.map((e) => e.path),
      ['run.sh'],
    );
    assert.deepEqual(m.problems, [
      { path: 'pipe', reason: 'is a FIFO; not synced' },
      { path: 'src', reason: 'is a folder (a git submodule?); not synced' },
    ]);
  });

  it('refuses a device file', async () => {
    symlink(root, 'devlink', '/dev/null');
    const m = await buildManifest(root, ['devlink'], await HashCache.load(null));
    assert.deepEqual(m.entries, []);
    assert.match(m.problems[0]?.reason ?? '', /outside the workspace/);
    // /dev/null itself, listed as if it were a workspace: a character device.
    const dev = await buildManifest('/dev', ['null'], await HashCache.load(null));
    assert.deepEqual(dev.problems, [{ path: 'null', reason: 'is a character device; not synced' }]);
  });

  it('refuses a tracked file reached through a folder since replaced by a symlink', async () => {
    // dir/f.txt is tracked; dir then becomes a link to a folder outside.
    writeFile(root, 'dir/f.txt', 'inside');
    git(root, 'add', 'dir/f.txt');
    mkdirSync(join(tmp.path, 'elsewhere'));
    writeFileSync(join(tmp.path, 'elsewhere/f.txt'), 'secret from outside');
    renameSync(join(root, 'dir'), join(tmp.path, 'moved'));
    symlink(root, 'dir', '../elsewhere');
    const m = await buildManifest(root, ['dir/f.txt', 'run.sh'], await HashCache.load(null));
    assert.deepEqual(
      m.entries.map((e) => e.path),
      ['run.sh'],
    );
    assert.deepEqual(m.problems, [{ path: 'dir/f.txt', reason: 'lies under the symlink "dir"' }]);
  });

  it('follows link chains: a link through another link that leaves is refused', async () => {
    symlink(root, 'here', '.');
    symlink(root, 'sneaky', 'here/../outside.txt');
    symlink(root, 'fine', 'here/src/main.ts');
    const m = await buildManifest(root, ['here', 'sneaky', 'fine'], await HashCache.load(null));
    assert.deepEqual(m.entries, [
      { path: 'fine', link: 'here/src/main.ts' },
      { path: 'here', link: '.' },
    ]);
    assert.deepEqual(m.problems, [
      { path: 'sneaky', reason: 'is a symlink to "here/../outside.txt", outside the workspace' },
    ]);
  });

  it('skips files deleted after listing, and de-duplicates paths', async () => {
    const m = await buildManifest(
      root,
      ['gone.txt', 'run.sh', 'run.sh'],
      await HashCache.load(null),
    );
    assert.deepEqual(
      m.entries.map((e) => e.path),
      ['run.sh'],
    );
    assert.deepEqual(m.problems, []);
  });

  it('a rebuild after one change re-reads only that file', async () => {
    const { files } = await listWorkspaceFiles(root, { source: 'git' });
    const cache = await HashCache.load(null, { racyWindowMs: 0 });
    const first = await buildManifest(root, files, cache);
    assert.equal(cache.misses, 5);
    writeFile(root, 'src/main.ts', 'console.log("changed!");\n');
    const second = await buildManifest(root, files, cache);
    assert.equal(cache.misses, 6);
    assert.equal(cache.hits, 4);
    const changed = second.entries.filter(
      (e, i) => JSON.stringify(e) !== JSON.stringify(first.entries[i]),
    );
    assert.deepEqual(changed, [fileEntry(root, 'src/main.ts', 0o644)]);
  });
});

describe('sync manifest of a 10,000-file workspace (prints timings) @integration', function () {
  this.timeout(180_000);
  let tmp: TempDir;
  before(() => (tmp = tempDir('manifest-big')));
  after(() => tmp.dispose());

  it('builds cold, then warm from the cache without reading a file', async () => {
    const root = join(tmp.path, 'ws');
    mkdirSync(root);
    initRepo(root);
    let bytes = 0;
    for (let d = 0; d < 100; d++) {
      mkdirSync(join(root, `pkg${d}`, 'src'), { recursive: true });
      for (let f = 0; f < 100; f++) {
        // ~2 KB each, varied so sizes and contents differ.
        const body = `// pkg ${d} file ${f}\n` + 'x'.repeat(1500 + (((d * 100 + f) * 37) % 1000));
        writeFileSync(join(root, `pkg${d}`, 'src', `f${f}.ts`), body);
        bytes += Buffer.byteLength(body);
      }
    }
    git(root, 'add', '-A');
    const written = Date.now();
    const cacheFile = join(tmp.path, 'cache/hashes.json');
    // The cache leaves files changed in its last 2 s alone; wait that out, as real workspaces would.
    await new Promise((r) => setTimeout(r, Math.max(0, written + 2100 - Date.now())));

    const t0 = performance.now();
    const listed = await listWorkspaceFiles(root, { source: 'git' });
    const t1 = performance.now();
    const cold = await HashCache.load(cacheFile);
    const coldManifest = await buildManifest(root, listed.files, cold);
    const t2 = performance.now();
    await cold.save();
    const t3 = performance.now();

    const warm = await HashCache.load(cacheFile);
    const t4 = performance.now();
    const warmListed = await listWorkspaceFiles(root, { source: 'git' });
    const warmManifest = await buildManifest(root, warmListed.files, warm);
    const t5 = performance.now();

    assert.equal(coldManifest.files, 10_000);
    assert.equal(coldManifest.bytes, bytes);
    assert.equal(cold.misses, 10_000);
    assert.equal(warm.hits, 10_000);
    assert.equal(warm.misses, 0);
    assert.deepEqual(warmManifest.entries, coldManifest.entries);
    const ms = (a: number, b: number): string => `${(b - a).toFixed(0)} ms`;
    console.log(
      `      10,000 files, ${(bytes / 1e6).toFixed(1)} MB: list ${ms(t0, t1)}, ` +
        `cold manifest ${ms(t1, t2)}, save cache ${ms(t2, t3)}; ` +
        `warm: load cache ${ms(t3, t4)}, list+manifest ${ms(t4, t5)}`,
    );
  });
});
