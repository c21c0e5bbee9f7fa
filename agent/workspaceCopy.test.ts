import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manifestDigest } from '../shared/manifestDigest';
import type { ManifestEntry } from '../shared/manifest';
import type { BlobStaging } from './blobStaging';
import { WorkspaceCopies } from './workspaceCopy';

const sha = (body: string): string => createHash('sha256').update(body).digest('hex');
const content = (body: string): { size: number; hash: string } => ({
  size: Buffer.byteLength(body),
  hash: sha(body),
});

/** A staging of workspace `ws` holding these contents, staged by hash. */
function stagedWith(copies: WorkspaceCopies, ...bodies: string[]): BlobStaging {
  const staging = copies.staging('ws');
  for (const b of bodies) staging.put(sha(b), Buffer.from(b));
  return staging;
}

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

  it('builds a new copy at its paths and moves the tree in whole: modes, a content twice, links', async () => {
    const entries: ManifestEntry[] = [
      { path: 'bin/run', ...content('#!/bin/sh\n'), mode: 0o755 },
      { path: 'docs/a.md', ...content('same\n'), mode: 0o644 },
      { path: 'docs/deep/b.md', ...content('same\n'), mode: 0o600 },
      { path: 'empty', ...content(''), mode: 0o644 },
      { path: 'latest', link: 'docs/a.md' },
    ];
    const staging = copies.staging('ws');
    staging.placeAt(
      new Map([
        [sha('#!/bin/sh\n'), 'bin/run'],
        [sha('same\n'), 'docs/a.md'],
        [sha(''), 'empty'],
      ]),
    );
    staging.put(sha('#!/bin/sh\n'), Buffer.from('#!/bin/sh\n'), 0o755);
    staging.put(sha('same\n'), Buffer.from('same\n'), 0o644);
    staging.put(sha(''), Buffer.alloc(0), 0o644);
    const placed = lstatSync(join(staging.treeDir, 'docs/a.md')).ino;
    const built = lstatSync(staging.treeDir).ino;
    const r = await copies.layOut('ws', entries, [], { staging });
    assert.deepEqual(r, { written: 5, removed: 0, kept: 0 });
    const tree = copies.dirOf('ws');
    assert.equal(lstatSync(tree).ino, built, 'the staged tree, renamed into place');
    assert.equal(lstatSync(join(tree, 'docs/a.md')).ino, placed, 'the staged file is the copy');
    assert.notEqual(
      lstatSync(join(tree, 'docs/deep/b.md')).ino,
      placed,
      'a second path gets a file of its own',
    );
    assert.equal(lstatSync(join(tree, 'bin/run')).mode & 0o777, 0o755);
    assert.equal(lstatSync(join(tree, 'docs/deep/b.md')).mode & 0o777, 0o600);
    assert.equal(readlinkSync(join(tree, 'latest')), 'docs/a.md');
    assert.deepEqual(readdirSync(join(tree, '..', 'incoming')), [], 'nothing is left staged');
    // The record is the layout's: the same manifest is then known without a stat.
    assert.ok(
      (await copies.check('ws', manifestDigest(entries), { changes: 0, busy: false })) !==
        undefined,
    );
  });

  it('writes its record to state.json a moment after a layout, and at once when flushed', async () => {
    const entries = [entry('a.txt', 'alpha\n')];
    await copies.layOut('ws', entries, [], { staging: stagedWith(copies, 'alpha\n'), changes: 0 });
    const stateFile = join(dir, 'workspaces', 'ws', 'state.json');
    assert.equal(existsSync(stateFile), false, 'not while the task the sync was for starts');
    copies.flushRecords();
    const restarted = new WorkspaceCopies(join(dir, 'workspaces'), 'darwin');
    assert.ok(
      await restarted.check('ws', manifestDigest(entries), { changes: 0, busy: false }),
      'a restarted agent knows the copy from its state.json',
    );
    // The manifest itself is held in memory only: a delta needs the layout of this process.
    assert.deepEqual(copies.lastLayout('ws'), { digest: manifestDigest(entries), entries });
    assert.equal(restarted.lastLayout('ws'), undefined);
    assert.equal(copies.lastLayout('never-synced'), undefined);
  });

  it('checks again only what its last layout did not hold, and trusts no state.json for it', async () => {
    await copies.layOut('ws', [entry('a', 'x\n')], [], { staging: stagedWith(copies, 'x\n') });
    assert.doesNotThrow(() => copies.validate([entry('a', 'x\n')], 'ws'));
    assert.throws(
      () => copies.validate([entry('a', 'x\n'), entry('b', 'y\n'), entry('b', 'y\n')], 'ws'),
      /b: listed twice/,
    );
    // A new path below a laid-out file is still refused.
    assert.throws(
      () => copies.validate([entry('a', 'x\n'), entry('a/b', 'y\n')], 'ws'),
      /a\/b: lies below a, which is not a folder/,
    );
    // A state.json that lists a path no manifest may hold (a task can write that file).
    copies.flushRecords();
    const stateFile = join(dir, 'workspaces', 'ws', 'state.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { files: Record<string, unknown> };
    state.files['../evil'] = { hash: sha('x\n'), mode: 0o644, size: 2, mtimeMs: 0 };
    writeFileSync(stateFile, JSON.stringify(state));
    const restarted = new WorkspaceCopies(join(dir, 'workspaces'), 'darwin');
    assert.throws(() => restarted.validate([entry('../evil', 'x\n')], 'ws'), /\.\./);
  });

  it('lays out contents staged at their paths into a copy another sync made meanwhile', async () => {
    const entries: ManifestEntry[] = [{ path: 'a/x.txt', ...content('x\n'), mode: 0o644 }];
    const staging = copies.staging('ws');
    staging.placeAt(new Map([[sha('x\n'), 'a/x.txt']]));
    staging.put(sha('x\n'), Buffer.from('x\n'), 0o644);
    // Another dispatcher's sync laid out the copy first, with a file of its own there.
    await copies.layOut('ws', [{ path: 'other', ...content('o\n'), mode: 0o644 }], [], {
      staging: stagedWith(copies, 'o\n'),
    });
    const r = await copies.layOut('ws', entries, [], { staging });
    assert.equal(r.written, 1);
    assert.equal(r.removed, 1);
    assert.equal(readFileSync(join(copies.dirOf('ws'), 'a/x.txt'), 'utf8'), 'x\n');
    assert.equal(existsSync(join(copies.dirOf('ws'), 'other')), false);
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
