import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareVersions, OCTASK_VERSION } from './version';

describe('version', () => {
  it('matches package.json', () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as {
      version: string;
    };
    assert.equal(OCTASK_VERSION, pkg.version);
  });

  it('compares dotted versions by number, not by text', () => {
    assert.equal(compareVersions('0.9.0', '0.10.0'), -1);
    assert.equal(compareVersions('0.10.0', '0.9.9'), 1);
    assert.equal(compareVersions('1.2.3', '1.2.3'), 0);
    assert.equal(compareVersions('1.2', '1.2.0'), 0);
    assert.equal(compareVersions('1.2', '1.2.1'), -1);
    assert.equal(compareVersions('2', '1.99.99'), 1);
    assert.equal(compareVersions('v18.0.0', '18.0.0'), 0);
    assert.equal(compareVersions('1.2.0-rc1', '1.2.0'), 0);
    assert.equal(compareVersions('1.3.0-rc1', '1.2.9'), 1);
  });
});
