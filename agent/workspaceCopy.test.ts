import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContentStore } from './contentStore';
import { WorkspaceCopies } from './workspaceCopy';

describe('workspace copies', () => {
  let dir: string;
  let copies: WorkspaceCopies;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'octask-copies-'));
    copies = new WorkspaceCopies(
      join(dir, 'workspaces'),
      new ContentStore(join(dir, 'store'), 1e9),
      'darwin',
    );
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
    const onWindows = new WorkspaceCopies(
      join(dir, 'w2'),
      new ContentStore(join(dir, 's2'), 1e9),
      'win32',
    );
    assert.throws(
      () => onWindows.validate([{ path: 'src/aux.c', size: 1, mode: 0o644, hash }]),
      /E_BAD_PATH|reserved|aux/i,
    );
    assert.doesNotThrow(() => copies.validate([{ path: 'src/aux.c', size: 1, mode: 0o644, hash }]));
  });
});
