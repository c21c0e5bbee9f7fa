import assert from 'node:assert/strict';
import type { ManifestEntry } from '../../../shared/manifest';
import { ManifestHistory } from './manifestHistory';
import { prepareWorkspace } from './preparedWorkspace';

const hash = (n: number): string => n.toString(16).padStart(64, '0');
const manifest = (...versions: number[]): ManifestEntry[] =>
  versions.map((v, i) => ({ path: `f${i}`, size: v, mode: 0o644, hash: hash(v) }));

describe('manifest history', () => {
  it('tells each new manifest what differs from the last few before it, newest first', () => {
    const history = new ManifestHistory();
    const prepared = [1, 2, 3, 4, 5, 6].map((v) =>
      history.attach(prepareWorkspace('w', '/r', manifest(1, v), [])),
    );
    const [first, , , , fifth, sixth] = prepared as [
      ReturnType<typeof prepareWorkspace>,
      ...Array<ReturnType<typeof prepareWorkspace>>,
    ];
    assert.deepEqual(first.bases, []);
    assert.deepEqual(
      sixth?.bases,
      [5, 4, 3, 2].map((v) => prepared[v - 1]?.entriesDigest),
      'four kept',
    );
    assert.deepEqual(sixth?.deltaFrom?.(fifth?.entriesDigest ?? ''), {
      changed: manifest(1, 6).slice(1),
      removed: [],
    });
    assert.equal(sixth?.deltaFrom?.(first.entriesDigest), undefined, 'the oldest was let go');
    // The same manifest again is remembered once, as the newest.
    const again = history.attach(prepareWorkspace('w', '/r', manifest(1, 3), []));
    assert.equal(again.bases?.[0], sixth?.entriesDigest);
    assert.ok(!again.bases?.includes(again.entriesDigest));
  });
});
