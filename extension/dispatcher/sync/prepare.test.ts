import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { ErrorCode } from '../../../shared/errors';
import type { ManifestEntry } from '../../../shared/manifest';
import type { TempDir } from '../../../test/helpers/gitRepo';
import { makeFixtureRepo, tempDir, writeFile } from '../../../test/helpers/gitRepo';
import { hashCacheFile, prepareWorkspaceAt } from './prepare';
import { prepareWorkspace, workspaceId } from './preparedWorkspace';

function fileEntry(root: string, path: string, mode: number): ManifestEntry {
  const content = readFileSync(join(root, path));
  const hash = createHash('sha256').update(content).digest('hex');
  return { path, size: content.length, mode, hash };
}

describe('sync prepare', () => {
  let tmp: TempDir;
  let root: string;
  beforeEach(() => {
    tmp = tempDir('prepare');
    root = makeFixtureRepo(tmp.path);
  });
  afterEach(() => tmp.dispose());

  it('cold and warm give the same manifest: git set, inside links, no deleted or ignored files', async () => {
    // Over SYNC_HASH_MAX_BYTES: hashed by the asynchronous path.
    writeFile(root, 'assets/big.bin', Buffer.alloc(3 * 1024 * 1024 + 5, 0x5a));
    const env = { ...process.env, XDG_CACHE_HOME: join(tmp.path, 'cache') };
    const cold = await prepareWorkspaceAt(root, { env, preserve: ['out/**'] });
    const expected: ManifestEntry[] = [
      fileEntry(root, '.gitignore', 0o644),
      fileEntry(root, 'assets/big.bin', 0o644),
      { path: 'link-in', link: 'src/main.ts' },
      fileEntry(root, 'notes/untracked.md', 0o644),
      fileEntry(root, 'run.sh', 0o755),
      fileEntry(root, 'src/main.ts', 0o644),
      fileEntry(root, 'src/util/strings.ts', 0o644),
    ];
    assert.deepEqual(cold.workspace.entries, expected);
    assert.deepEqual(cold.skipped, [
      { path: 'link-abs', reason: 'is a symlink to "/etc/hostname", outside the workspace' },
      { path: 'link-out', reason: 'is a symlink to "../outside.txt", outside the workspace' },
    ]);
    // The digest rule is PreparedWorkspace's, unchanged.
    const id = workspaceId(hostname(), root);
    assert.equal(cold.workspace.digest, prepareWorkspace(id, root, expected, ['out/**']).digest);
    const warm = await prepareWorkspaceAt(root, { env, preserve: ['out/**'] });
    assert.deepEqual(warm.workspace.entries, cold.workspace.entries);
    assert.deepEqual(warm.skipped, cold.skipped);
    assert.equal(warm.workspace.digest, cold.workspace.digest);
  });

  it('an old-format cache file means starting empty, never trusting its rows', async () => {
    const env = { ...process.env, XDG_CACHE_HOME: join(tmp.path, 'cache') };
    const file = hashCacheFile(workspaceId(hostname(), root), env);
    const run = lstatSync(join(root, 'run.sh'));
    const wrong = [run.size, run.mtimeMs, run.ctimeMs, run.ino, 'ab'.repeat(32)];
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify({ version: 1, rows: { [join(root, 'run.sh')]: wrong } }));
    const first = await prepareWorkspaceAt(root, { env });
    assert.deepEqual(
      first.workspace.entries.find((e) => e.path === 'run.sh'),
      fileEntry(root, 'run.sh', 0o755),
    );
  });

  it('refuses a root that is not a folder, with E_BAD_PATH', async () => {
    await assert.rejects(prepareWorkspaceAt(join(root, 'run.sh')), { code: ErrorCode.BadPath });
    await assert.rejects(prepareWorkspaceAt(join(root, 'nope')), /is not a folder/);
  });
});
