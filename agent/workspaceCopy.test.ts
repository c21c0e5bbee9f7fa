import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manifestDigest } from '../shared/manifestDigest';
import type { ManifestEntry } from '../shared/manifest';
import { WorkspaceCopies } from './workspaceCopy';

describe('workspace copies', () => {
  let dir: string;
  let copies: WorkspaceCopies;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'octask-copies-'));
    copies = new WorkspaceCopies(join(dir, 'workspaces'), 'darwin');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('removes copies not synced for longer than the limit, and keeps the others', async () => {
    for (const name of ['old-1', 'fresh-2']) {
      mkdirSync(join(dir, 'workspaces', name, 'tree'), { recursive: true });
      writeFileSync(join(dir, 'workspaces', name, 'state.json'), '{}');
    }
    const tenDaysAgo = (Date.now() - 10 * 86_400_000) / 1000;
    utimesSync(join(dir, 'workspaces', 'old-1', 'state.json'), tenDaysAgo, tenDaysAgo);
    assert.deepEqual(await copies.removeStale(7 * 86_400_000), ['old-1']);
    assert.equal(existsSync(join(dir, 'workspaces', 'old-1')), false);
    assert.equal(existsSync(join(dir, 'workspaces', 'fresh-2')), true);
  });

  it('refuses names that differ only in case where the file system folds case', () => {
    const hash = 'a'.repeat(64);
    assert.throws(
      () =>
        copies.validate([
          { path: 'Readme.md', size: 1, mode: 0o644, hash },
          { path: 'README.md', size: 1, mode: 0o644, hash },
        ]),
      /differ only in case/,
    );
  });

  it('refuses Windows-reserved names only where they are reserved', () => {
    const hash = 'a'.repeat(64);
    const onWindows = new WorkspaceCopies(join(dir, 'w2'), 'win32');
    assert.throws(
      () => onWindows.validate([{ path: 'src/aux.c', size: 1, mode: 0o644, hash }]),
      /E_BAD_PATH|reserved|aux/i,
    );
    assert.doesNotThrow(() => copies.validate([{ path: 'src/aux.c', size: 1, mode: 0o644, hash }]));
  });

  const entry = (path: string, body: string): ManifestEntry => ({
    path,
    size: Buffer.byteLength(body),
    mode: 0o644,
    hash: createHash('sha256').update(body).digest('hex'),
  });

  it('writes a content once: the staged file itself is renamed into the copy', async () => {
    const entries = [entry('src/a.txt', 'alpha\n'), entry('src/b.txt', 'beta\n')];
    const staging = copies.staging('ws');
    for (const [i, e] of entries.entries())
      staging.put((e as { hash: string }).hash, Buffer.from(i ? 'beta\n' : 'alpha\n'));
    const staged = entries.map((e) => lstatSync(staging.pathOf((e as { hash: string }).hash)).ino);
    const r = await copies.layOut('ws', entries, [], { staging });
    assert.equal(r.written, 2);
    const tree = copies.dirOf('ws');
    assert.deepEqual(
      entries.map((e) => lstatSync(join(tree, e.path)).ino),
      staged,
      'the same inodes: no second write',
    );
    assert.deepEqual(readdirSync(join(tree, '..', 'incoming')), [], 'nothing is left staged');
  });

  it('checks a copy by digest, and looks at its files again once a task used it', async () => {
    const entries = [entry('a.txt', 'a\n')];
    const staging = copies.staging('ws');
    staging.put((entries[0] as { hash: string }).hash, Buffer.from('a\n'));
    await copies.layOut('ws', entries, [], { staging, changes: 0 });
    const digest = manifestDigest(entries);
    assert.deepEqual(await copies.check('ws', digest, { changes: 0, busy: false }), { kept: 0 });
    assert.equal(
      await copies.check('ws', manifestDigest([entry('a.txt', 'b\n')]), {
        changes: 0,
        busy: false,
      }),
      undefined,
    );
    appendFileSync(join(copies.dirOf('ws'), 'a.txt'), 'edited by a task\n');
    assert.equal(
      await copies.check('ws', digest, { changes: 2, busy: false }),
      undefined,
      'a task ran since',
    );
    assert.equal(
      await copies.check('ws', digest, { changes: 2, busy: true }),
      undefined,
      'a task runs now',
    );
    // A new WorkspaceCopies (an agent restart) reads the record from state.json.
    const restarted = new WorkspaceCopies(join(dir, 'workspaces'), 'darwin');
    assert.equal(await restarted.check('ws', digest, { changes: 0, busy: false }), undefined);
    assert.deepEqual(
      [...restarted.plan('ws', entries).need.keys()],
      [(entries[0] as { hash: string }).hash],
    );
  });

  it('believes its watch of the folders: a built file beside the sources is no change, an edit is', async () => {
    const entries = [entry('src/a.c', 'int a;\n'), entry('src/b.c', 'int b;\n')];
    const staging = copies.staging('ws');
    staging.put((entries[0] as { hash: string }).hash, Buffer.from('int a;\n'));
    staging.put((entries[1] as { hash: string }).hash, Buffer.from('int b;\n'));
    await copies.layOut('ws', entries, [], { staging, changes: 0 });
    const digest = manifestDigest(entries);
    const src = join(copies.dirOf('ws'), 'src');
    writeFileSync(join(src, 'a.o'), 'object code');
    assert.ok(
      await copies.check('ws', digest, { changes: 2, busy: false }),
      'a.o is no file of the workspace',
    );
    // Same size, same mtime: only the watch can tell this edit apart.
    const before = lstatSync(join(src, 'b.c'));
    writeFileSync(join(src, 'b.c'), 'int B;\n');
    utimesSync(join(src, 'b.c'), before.atime, before.mtime);
    assert.equal(
      await copies.check('ws', digest, { changes: 4, busy: false }),
      undefined,
      'b.c was written',
    );
  });

  it('sees a file changed by hand, with no task in between, through the watch', async () => {
    const entries = [entry('a.txt', 'hand\n')];
    const staging = copies.staging('ws');
    staging.put((entries[0] as { hash: string }).hash, Buffer.from('hand\n'));
    await copies.layOut('ws', entries, [], { staging, changes: 0 });
    const file = join(copies.dirOf('ws'), 'a.txt');
    const before = lstatSync(file);
    writeFileSync(file, 'HAND\n');
    utimesSync(file, before.atime, before.mtime);
    assert.equal(
      await copies.check('ws', manifestDigest(entries), { changes: 0, busy: false }),
      undefined,
    );
  });
});
