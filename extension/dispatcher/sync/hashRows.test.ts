import assert from 'node:assert/strict';
import type { Row } from './hashRows';
import { HashRows } from './hashRows';

const row = (n: number): Row => [n, n + 0.25, n + 0.5, n * 1000, n.toString(16).padStart(64, '0')];

describe('sync hashRows', () => {
  it('round-trips rows under a common folder, with odd names', () => {
    const rows = HashRows.empty();
    const paths = ['/w/a.ts', '/w/src/b c.ts', '/w/src/ünï.ts', '/w/new\nline'];
    paths.forEach((p, i) => rows.set(p, row(i + 1)));
    const text = rows.encode();
    assert.equal((JSON.parse(text) as { base: string }).base, '/w/');
    const back = HashRows.decode(text);
    assert.equal(back.size, 4);
    paths.forEach((p, i) => assert.deepEqual(back.get(p), row(i + 1)));
    assert.equal(back.get('/w/missing'), undefined);
    assert.equal(back.get('/other/a.ts'), undefined);
  });

  it('replaces, deletes and prunes loaded rows, and a new folder widens the base', () => {
    const first = HashRows.empty();
    for (let i = 0; i < 4; i++) first.set(`/w/p/f${i}`, row(i));
    const rows = HashRows.decode(first.encode());
    rows.set('/w/p/f0', row(10));
    assert.equal(rows.delete('/w/p/f1'), true);
    assert.equal(rows.delete('/w/p/f1'), false);
    rows.set('/w/q/g', row(11));
    assert.equal(rows.size, 4);
    rows.resetUsage();
    rows.get('/w/p/f0');
    rows.get('/w/p/f2');
    rows.get('/w/q/g');
    assert.equal(rows.pruneUnused(), true); // f3, unused this round
    assert.equal(rows.pruneUnused(), false);
    const back = HashRows.decode(rows.encode());
    assert.equal((JSON.parse(rows.encode()) as { base: string }).base, '/w/');
    assert.deepEqual(
      ['/w/p/f0', '/w/p/f1', '/w/p/f2', '/w/p/f3', '/w/q/g'].map((p) => back.get(p)?.[0]),
      [10, undefined, 2, undefined, 11],
    );
  });

  it('an empty set encodes and decodes to nothing', () => {
    assert.equal(HashRows.decode(HashRows.empty().encode()).size, 0);
    const rows = HashRows.empty();
    rows.set('relative-only', row(1));
    assert.deepEqual(HashRows.decode(rows.encode()).get('relative-only'), row(1));
  });
});
