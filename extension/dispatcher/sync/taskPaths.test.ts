import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { matchesAnyGlob } from '../../../shared/glob';
import type { ManifestEntry } from '../../../shared/manifest';
import { prepareWorkspace } from './preparedWorkspace';
import {
  checkWorkspaceTask,
  placeArtifacts,
  rebaseGlob,
  setupStep,
  unmatchedArtifactGlobs,
} from './taskPaths';

const file = (path: string, hash = 'a'.repeat(64)): ManifestEntry => ({
  path,
  size: 1,
  mode: 0o644,
  hash,
});

describe('task paths', () => {
  it('rebases globs on the task cwd; a leading / or ${workspaceFolder} means the root', () => {
    assert.equal(rebaseGlob('dist/**', ''), 'dist/**');
    assert.equal(rebaseGlob('dist/**', 'web'), '/web/dist/**');
    assert.equal(rebaseGlob('*.o', 'c/src'), '/c/src/**/*.o');
    assert.equal(rebaseGlob('/dist/**', 'web'), '/dist/**');
    assert.equal(rebaseGlob('${workspaceFolder}/dist/app', 'web'), '/dist/app');
    assert.equal(rebaseGlob('../lib/x.a', 'web/app'), '/web/lib/x.a');
    assert.ok(matchesAnyGlob([rebaseGlob('*.o', 'c')], 'c/deep/x.o'));
    assert.ok(!matchesAnyGlob([rebaseGlob('*.o', 'c')], 'd/x.o'));
  });

  it('puts each agent’s artifacts in a folder named for it, at the glob’s base', () => {
    const spec = { command: 'make', artifacts: ['out/**', 'bin/app', '*.log'] };
    const entries = [file('out/sub/r.txt'), file('bin/app'), file('logs/x.log')];
    assert.deepEqual(
      placeArtifacts(spec, entries, 'pi 4').map((e) => e.path),
      ['out/pi_4/sub/r.txt', 'bin/pi_4/app', 'pi_4/logs/x.log'],
    );
    assert.deepEqual(placeArtifacts(spec, entries, null), entries);
  });

  it('names the artifact globs that matched nothing', () => {
    const spec = { command: 'make', cwd: 'web', artifacts: ['dist/**', 'missing/*'] };
    assert.deepEqual(unmatchedArtifactGlobs(spec, [file('web/dist/a.js')]), ['missing/*']);
  });

  it('keys a setup on the key files’ hashes, and nothing else', () => {
    const ws = (lock: string, other: string) =>
      prepareWorkspace(
        'w',
        '/r',
        [file('package-lock.json', lock.repeat(64)), file('src/a.js', other.repeat(64))],
        [],
      );
    const spec = { command: 'x', setup: { command: 'npm ci', key: ['package-lock.json'] } };
    const a = setupStep(ws('1', '2'), spec);
    assert.equal(setupStep(ws('1', '3'), spec)?.key, a?.key);
    assert.notEqual(setupStep(ws('4', '2'), spec)?.key, a?.key);
    assert.equal(a?.command, 'npm ci');
    assert.equal(setupStep(ws('1', '2'), { command: 'x' }), undefined);
  });

  it('refuses a cwd that is not a folder of the workspace, or a malformed setup, before any sync', () => {
    const root = mkdtempSync(join(tmpdir(), 'octask-cwd-'));
    try {
      mkdirSync(join(root, 'sub'));
      const ws = prepareWorkspace('w', root, [file('sub/a')], []);
      const check = (spec: Record<string, unknown>) => () =>
        checkWorkspaceTask(ws, { command: 'x', ...spec });
      assert.doesNotThrow(check({ cwd: 'sub' }));
      assert.doesNotThrow(check({}));
      assert.throws(check({ cwd: 'nope' }), /no such folder/);
      assert.throws(check({ cwd: '../x' }), /\.\./);
      assert.throws(check({ setup: { command: 3 } }), /setup must be/);
      assert.throws(check({ artifacts: 'dist' }), /artifacts must be/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
