import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { EntryColumns } from './manifestColumns';
import { fromColumns, toColumns } from './manifestColumns';
import type { ManifestEntry } from './protocol';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

describe('manifest columns', () => {
  const entries: ManifestEntry[] = [
    { path: 'a.txt', size: 3, mode: 0o644, hash: sha('a') },
    { path: 'bin/run', size: 0, mode: 0o755, hash: sha('') },
    { path: 'latest', link: 'bin/run' },
    { path: 'z/ü name.md', size: 1 << 20, mode: 0o600, hash: sha('z') },
  ];

  it('carry entries and back, links and empty files included', () => {
    assert.deepEqual(fromColumns(toColumns(entries)), entries);
    assert.deepEqual(fromColumns(toColumns([])), []);
  });

  it('refuse columns that disagree or hold what no entry can', () => {
    const c = toColumns(entries);
    const bad: Array<[string, EntryColumns]> = [
      ['a size short', { ...c, sizes: c.sizes.slice(1) }],
      ['a mode short', { ...c, modes: c.modes.slice(1) }],
      ['a hash short', { ...c, hashes: c.hashes.subarray(1) }],
      ['a link target short', { ...c, links: [] }],
      ['a link target over', { ...c, links: ['x', 'y'] }],
      ['a size below -1', { ...c, sizes: [-2, 0, -1, 1] }],
      ['a fractional size', { ...c, sizes: [0.5, 0, -1, 1] }],
      ['a negative mode', { ...c, modes: [-1, 0, 0, 0] }],
    ];
    for (const [what, columns] of bad) assert.equal(fromColumns(columns), undefined, what);
  });
});
