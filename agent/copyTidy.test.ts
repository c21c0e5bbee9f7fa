import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ManifestEntry } from '../shared/manifest';
import { WorkspaceCopies } from './workspaceCopy';

describe('workspace copies behave like a checkout', () => {
  let dir: string;
  let copies: WorkspaceCopies;
  let tree: string;
  /** Every content the tests made, by hash: what a dispatcher would send. */
  const bodies = new Map<string, Buffer>();
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'octask-tidy-'));
    copies = new WorkspaceCopies(join(dir, 'workspaces'));
    tree = copies.dirOf('ws');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const files = async (spec: Record<string, string>): Promise<ManifestEntry[]> => {
    const entries: ManifestEntry[] = [];
    for (const [path, body] of Object.entries(spec).sort(([a], [b]) => (a < b ? -1 : 1))) {
      const hash = createHash('sha256').update(body).digest('hex');
      bodies.set(hash, Buffer.from(body));
      entries.push({ path, size: body.length, mode: 0o644, hash });
    }
    return entries;
  };
  /** A sync's layout: stages what the plan needs, as the receiver would, then lays out. */
  const layOut = (
    entries: ManifestEntry[],
    preserve: string[],
    options: { clean?: boolean } = {},
  ): ReturnType<WorkspaceCopies['layOut']> => {
    const staging = copies.staging('ws');
    for (const hash of copies.plan('ws', entries).need.keys())
      staging.put(hash, bodies.get(hash) as Buffer);
    return copies.layOut('ws', entries, preserve, { ...options, staging });
  };
  /** A file a task made in the copy. */
  const made = (rel: string, body = 'built\n'): void => {
    mkdirSync(dirname(join(tree, rel)), { recursive: true });
    writeFileSync(join(tree, rel), body);
  };
  const has = (rel: string): boolean => existsSync(join(tree, rel));

  it('keeps what tasks made and removes what left the workspace, with counts', async () => {
    await layOut(await files({ 'a.txt': 'a', 'src/b.c': 'b', 'old/gone.txt': 'g' }), []);
    made('node_modules/jest/index.js');
    made('node_modules/jest/package.json');
    made('src/b.o');
    const r = await layOut(await files({ 'a.txt': 'a2', 'src/b.c': 'b' }), []);
    assert.deepEqual(r, { written: 1, removed: 1, kept: 3 });
    assert.ok(has('node_modules/jest/index.js') && has('src/b.o'));
    assert.ok(!has('old/gone.txt') && !has('old'), 'a folder emptied of workspace files goes too');
    assert.equal(readFileSync(join(tree, 'a.txt'), 'utf8'), 'a2');
  });

  it('gives a fresh copy with clean, except what --preserve keeps at any depth', async () => {
    const entries = await files({ 'a.txt': 'a', 'sub/keep.c': 'c' });
    await layOut(entries, []);
    for (const rel of ['sub/x.o', 'sub/deep/y.o', 'cache/z.o', 'node_modules/m.js', 'build/out'])
      made(rel);
    const r = await layOut(entries, ['**/*.o', 'node_modules'], { clean: true });
    assert.equal(r.removed, 1);
    assert.ok(!has('build'), 'an unpreserved task-made folder goes entirely');
    for (const rel of ['sub/x.o', 'sub/deep/y.o', 'cache/z.o', 'node_modules/m.js'])
      assert.ok(has(rel), rel);
  });

  for (const glob of ['sub/x.o', 'sub/**', '**/*.o', '*.o', '/sub/x.o']) {
    it(`keeps a file below an unsynced folder with --preserve ${glob}`, async () => {
      await layOut(await files({ 'a.txt': 'a', 'sub/x.o': 'was tracked' }), []);
      // sub/x.o leaves the workspace (and sub with it): only --preserve keeps it.
      const r = await layOut(await files({ 'a.txt': 'a' }), [glob]);
      assert.ok(has('sub/x.o'), glob);
      assert.equal(r.removed, 0);
      await layOut(await files({ 'a.txt': 'a' }), [glob], { clean: true });
      assert.ok(has('sub/x.o'), `${glob} with clean`);
    });
  }

  it('knows when a copy already matches a manifest', async () => {
    const entries = await files({ 'a.txt': 'a' });
    assert.equal(await copies.matches('ws', entries), false);
    await layOut(entries, []);
    assert.equal(await copies.matches('ws', entries), true);
    assert.equal(await copies.matches('ws', await files({ 'a.txt': 'b' })), false);
  });
});
