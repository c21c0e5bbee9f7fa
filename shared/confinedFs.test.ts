import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfinedTree, isTempName, linkOnDisk } from './confinedFs';

describe('ConfinedTree', () => {
  let base: string;
  let root: string;
  let outside: string;
  let source: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'octask-confined-'));
    root = join(base, 'root');
    outside = join(base, 'outside');
    mkdirSync(root);
    mkdirSync(outside);
    source = join(base, 'source');
    writeFileSync(source, 'content');
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('replaces a symlink at the target instead of writing through it', async () => {
    symlinkSync(join(outside, 'victim'), join(root, 'f'));
    const tree = new ConfinedTree(root, { replaceNonFolders: false });
    await tree.copyIn(source, 'f', 0o644);
    tree.close();
    assert.equal(existsSync(join(outside, 'victim')), false);
    assert.equal(lstatSync(join(root, 'f')).isFile(), true);
    assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'content');
  });

  it('refuses to pass through a symlinked folder, or replaces it, as told; never writes outside', async () => {
    symlinkSync(outside, join(root, 'd'));
    const refusing = new ConfinedTree(root, { replaceNonFolders: false });
    await assert.rejects(refusing.copyIn(source, 'd/x', 0o644), /E_BAD_PATH|symlink stands/);
    refusing.close();
    const replacing = new ConfinedTree(root, { replaceNonFolders: true });
    await replacing.copyIn(source, 'd/x', 0o644);
    replacing.close();
    assert.deepEqual(readdirSync(outside), []);
    assert.equal(lstatSync(join(root, 'd')).isDirectory(), true);
    assert.equal(readFileSync(join(root, 'd', 'x'), 'utf8'), 'content');
  });

  it('keeps writing into the folder it opened when that folder is swapped for a link', async function () {
    if (process.platform !== 'linux' && process.platform !== 'android') {
      assert.fail(`the /proc/self/fd confinement is Linux-only; this is ${process.platform}`);
    }
    const tree = new ConfinedTree(root, { replaceNonFolders: true });
    tree.folder('a/b');
    // What a racing task would do between the check and the write.
    renameSync(join(root, 'a'), join(root, 'moved'));
    symlinkSync(outside, join(root, 'a'));
    await tree.copyIn(source, 'a/b/x', 0o644);
    await tree.linkIn('a/b/l', 'x');
    tree.close();
    assert.deepEqual(readdirSync(outside), []);
    assert.equal(readFileSync(join(root, 'moved', 'b', 'x'), 'utf8'), 'content');
    assert.equal(lstatSync(join(root, 'moved', 'b', 'l')).isSymbolicLink(), true);
  });

  it('leaves no temporary file behind, and names them recognisably', async () => {
    const tree = new ConfinedTree(root, { replaceNonFolders: true });
    await tree.copyIn(source, 'a', 0o600);
    await tree.linkIn('b', 'a');
    mkdirSync(join(root, 'c'));
    await assert.rejects(
      new ConfinedTree(root, { replaceNonFolders: false }).copyIn(source, 'c', 0o644),
      /folder is in the way/,
    );
    tree.close();
    assert.deepEqual(readdirSync(root).sort(), ['a', 'b', 'c']);
    assert.equal(isTempName('.octask-0123456789abcdef01234567.tmp'), true);
    assert.equal(isTempName('f.octask-tmp'), false);
    assert.equal(linkOnDisk(root, 'b'), 'a');
    assert.equal(linkOnDisk(root, 'a'), undefined);
    assert.equal(linkOnDisk(root, 'missing'), undefined);
  });
});
