import assert from 'node:assert/strict';
import { specFromDefinition } from './taskDefinition';

const withWs = { defaultTarget: 'any', workspaceRoot: '/home/me/proj', syncEnabled: true };

describe('specFromDefinition', () => {
  it('builds a spec with sync, cwd, inputs and artifacts', () => {
    const r = specFromDefinition(
      {
        type: 'octask',
        command: 'make',
        target: 'all',
        shards: 2,
        timeout: 60,
        env: { A: '1' },
        cwd: '/home/me/proj/sub/dir',
        inputs: ['src/**'],
        artifacts: ['out/*.bin'],
      },
      withWs,
    );
    assert.deepEqual(r, {
      spec: {
        command: 'make',
        target: { kind: 'all' },
        shards: 2,
        timeoutSec: 60,
        env: { A: '1' },
        sync: { root: '/home/me/proj', inputs: ['src/**'] },
        cwd: 'sub/dir',
        artifacts: ['out/*.bin'],
      },
    });
  });

  it('takes clean, preserve and setup; ${workspaceFolder} globs become root-anchored', () => {
    const r = specFromDefinition(
      {
        type: 'octask',
        command: 'npm test',
        cwd: 'web',
        clean: true,
        preserve: ['**/*.o'],
        setup: { command: 'npm ci', key: ['package-lock.json', '/home/me/proj/.nvmrc'] },
        artifacts: ['/home/me/proj/dist/**', 'coverage/**'],
      },
      withWs,
    );
    assert.deepEqual(r.spec?.sync, {
      root: '/home/me/proj',
      preserve: ['**/*.o'],
      clean: true,
    });
    assert.deepEqual(r.spec?.setup, { command: 'npm ci', key: ['package-lock.json', '/.nvmrc'] });
    assert.deepEqual(r.spec?.artifacts, ['/dist/**', 'coverage/**']);
  });

  it('says what is wrong with clean and setup', () => {
    assert.match(
      specFromDefinition({ type: 'octask', command: 'x', clean: 'yes' }, withWs).error ?? '',
      /"clean" must be true or false/,
    );
    assert.match(
      specFromDefinition({ type: 'octask', command: 'x', setup: { key: ['a'] } }, withWs).error ??
        '',
      /"setup" must be/,
    );
  });

  it('takes the default target and a relative cwd', () => {
    const r = specFromDefinition(
      { type: 'octask', command: 'ls', cwd: './a' },
      { ...withWs, defaultTarget: 'pi' },
    );
    assert.deepEqual(r.spec?.target, { kind: 'agent', name: 'pi' });
    assert.equal(r.spec?.cwd, 'a');
  });

  it('refuses a cwd outside the workspace', () => {
    assert.match(specFromDefinition({ command: 'ls', cwd: '../x' }, withWs).error ?? '', /outside/);
    assert.match(specFromDefinition({ command: 'ls', cwd: '/etc' }, withWs).error ?? '', /outside/);
  });

  it('names every wrong field', () => {
    const r = specFromDefinition({ command: 'x', shards: 0, env: { A: 1 }, inputs: 'a' }, withWs);
    assert.match(r.error ?? '', /"shards".*"inputs".*"env"/);
    assert.match(specFromDefinition({ command: ' ' }, withWs).error ?? '', /"command"/);
  });

  it('runs without sync when there is no folder or sync is off', () => {
    const none = specFromDefinition({ command: 'ls' }, { ...withWs, workspaceRoot: undefined });
    assert.equal(none.spec?.sync, undefined);
    const off = specFromDefinition({ command: 'ls', sync: false }, withWs);
    assert.equal(off.spec?.sync, undefined);
    assert.match(
      specFromDefinition({ command: 'ls', sync: false, artifacts: ['a'] }, withWs).error ?? '',
      /need workspace sync/,
    );
  });
});
