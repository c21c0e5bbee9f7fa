import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OCTASK_VERSION, compareVersions } from './version';

describe('version', () => {
  it('matches package.json', () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as {
      version: string;
    };
    assert.equal(OCTASK_VERSION, pkg.version);
  });

  it('compareVersions orders dotted versions by their numbers', () => {
    assert.equal(compareVersions('0.1.0', '0.1.0'), 0);
    assert.equal(compareVersions('0.9.1', '0.10.0'), -1);
    assert.equal(compareVersions('1.0.0', '0.99.99'), 1);
    assert.equal(compareVersions('1.2', '1.2.0'), 0);
    assert.equal(compareVersions('1.2.0-beta.1', '1.2.0'), 0);
    assert.equal(compareVersions('v2.0.0', '1.9.9'), 1);
  });
});
