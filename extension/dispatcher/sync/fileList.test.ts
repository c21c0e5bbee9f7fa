import assert from 'node:assert/strict';
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TempDir } from '../../../test/helpers/gitRepo';
import { git, initRepo, makeFixtureRepo, tempDir, writeFile } from '../../../test/helpers/gitRepo';
import { findWorkspaceRoot, listWorkspaceFiles, walkFiles } from './fileList';

const GIT_SET = [
  '.gitignore',
  'link-abs',
  'link-in',
  'link-out',
  'notes/untracked.md',
  'run.sh',
  'src/main.ts',
  'src/util/strings.ts',
];
/** GIT_SET and the tracked file deleted from disk. */
const GIT_LISTED = [...GIT_SET.slice(0, 1), 'gone.txt', ...GIT_SET.slice(1)];

describe('sync fileList', () => {
  let tmp: TempDir;
  let root: string;

  beforeEach(() => {
    tmp = tempDir('filelist');
    root = makeFixtureRepo(tmp.path);
  });
  afterEach(() => tmp.dispose());

  it('lists tracked and untracked files, not ignored or .git ones, sorted', async () => {
    const { files, skipped } = await listWorkspaceFiles(root, { source: 'git' });
    // gone.txt is tracked but deleted locally: listed, and left out by buildManifest.
    assert.deepEqual(files, GIT_LISTED);
    assert.deepEqual(skipped, []);
  });

  it('auto uses git inside a work tree', async () => {
    const { files } = await listWorkspaceFiles(root, { source: 'auto' });
    assert.deepEqual(files, GIT_LISTED);
  });

  it('auto fails, rather than walking, when git fails inside a work tree', async () => {
    writeFileSync(join(root, '.git/index'), 'not an index');
    await assert.rejects(listWorkspaceFiles(root, { source: 'auto' }), /index/);
  });

  it('lists relative to a workspace that is a subfolder of the work tree', async () => {
    const { files } = await listWorkspaceFiles(join(root, 'src'), { source: 'git' });
    assert.deepEqual(files, ['main.ts', 'util/strings.ts']);
  });

  it('walks everything but .git when asked, ignored files included', async () => {
    const { files } = await listWorkspaceFiles(root, { source: 'walk' });
    assert.deepEqual(files, [
      '.gitignore',
      'build/nested/deep.js',
      'build/out.js',
      'debug.log',
      'link-abs',
      'link-in',
      'link-out',
      'notes/untracked.md',
      'run.sh',
      'src/main.ts',
      'src/util/strings.ts',
    ]);
  });

  it('walks outside git in auto mode, skipping a .git folder in any case', async () => {
    const plain = join(tmp.path, 'plain');
    writeFile(plain, 'a.txt', 'a');
    writeFile(plain, '.GIT/config', 'not travelling');
    writeFile(plain, 'sub/.git/HEAD', 'nor this');
    writeFile(plain, 'sub/b.txt', 'b');
    const { files } = await listWorkspaceFiles(plain, { source: 'auto' });
    assert.deepEqual(files, ['a.txt', 'sub/b.txt']);
  });

  it('fails in git mode outside a work tree', async () => {
    const plain = join(tmp.path, 'plain');
    mkdirSync(plain);
    await assert.rejects(listWorkspaceFiles(plain, { source: 'git' }));
  });

  it('--include adds ignored files, from a folder or by name anywhere', async () => {
    const dirs = await listWorkspaceFiles(root, { source: 'git', include: ['build/**'] });
    assert.deepEqual(
      dirs.files.filter((f) => f.startsWith('build/')),
      ['build/nested/deep.js', 'build/out.js'],
    );
    assert.ok(!dirs.files.includes('debug.log'));
    const names = await listWorkspaceFiles(root, { source: 'git', include: ['*.log'] });
    assert.deepEqual(names.files, [...GIT_LISTED, 'debug.log'].sort());
  });

  it("only (a task's inputs) narrows the set to matching files, --include ones too", async () => {
    const { files } = await listWorkspaceFiles(root, {
      source: 'git',
      include: ['build/**'],
      only: ['build/**', '*.md'],
    });
    // A bare name matches at any depth, as for --include.
    assert.deepEqual(files, ['build/nested/deep.js', 'build/out.js', 'notes/untracked.md']);
  });

  it('--include never reaches outside the workspace or into .git', async () => {
    const { files } = await listWorkspaceFiles(root, {
      source: 'git',
      include: ['../*', '.git/**', '**/HEAD'],
    });
    assert.deepEqual(files, GIT_LISTED);
  });

  it('--exclude removes matches, and wins over --include', async () => {
    const { files } = await listWorkspaceFiles(root, {
      source: 'git',
      include: ['build/**'],
      exclude: ['src', 'build/nested', 'link-*'],
    });
    assert.deepEqual(files, [
      '.gitignore',
      'build/out.js',
      'gone.txt',
      'notes/untracked.md',
      'run.sh',
    ]);
  });

  it('reports an untracked nested repository instead of listing it', async () => {
    const nested = join(root, 'vendor/lib');
    mkdirSync(nested, { recursive: true });
    initRepo(nested);
    writeFile(nested, 'x.c', 'int x;');
    git(nested, 'add', '-A');
    git(nested, 'commit', '-q', '-m', 'x');
    const { files, skipped } = await listWorkspaceFiles(root, { source: 'git' });
    assert.deepEqual(files, GIT_LISTED);
    assert.deepEqual(skipped, [
      { path: 'vendor/lib', reason: 'is a nested git repository; not synced' },
    ]);
  });

  it('walkFiles of a base that is a file yields just it, and of a missing one nothing', async () => {
    assert.deepEqual(await walkFiles(root, 'run.sh'), ['run.sh']);
    assert.deepEqual(await walkFiles(root, 'no/such'), []);
  });

  it('findWorkspaceRoot gives the top level from a subfolder, null outside git', async () => {
    assert.equal(await findWorkspaceRoot(join(root, 'src/util')), realpathSync(root));
    const plain = join(tmp.path, 'plain');
    mkdirSync(plain);
    assert.equal(await findWorkspaceRoot(plain), null);
  });
});
