import assert from 'node:assert/strict';
import type { ManifestEntry } from './manifest';
import { applyDelta, manifestDelta } from './manifestDelta';

const hash = (n: number): string => n.toString(16).padStart(64, '0');
const file = (path: string, n = 1, mode = 0o644): ManifestEntry => ({
  path,
  size: n,
  mode,
  hash: hash(n),
});

/** A seeded pseudo-random manifest: the same every run. */
function randomManifest(seed: number, n: number): ManifestEntry[] {
  let x = seed;
  // xorshift32: whole 32-bit steps, so the sequence never collapses.
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const byPath = new Map<string, ManifestEntry>();
  while (byPath.size < n) {
    const path = `d${next() % 7}/f${next() % (n * 2)}${next() % 5 === 0 ? '€' : ''}`;
    byPath.set(
      path,
      next() % 10 === 0 ? { path, link: `t${next() % 3}` } : file(path, next() % 4, 0o644),
    );
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
}

describe('manifest delta', () => {
  it('tells only what differs, and applying it gives the new manifest back', () => {
    const base = [file('a'), file('b/c'), { path: 'l', link: 'a' }, file('z', 2)];
    const next = [file('a'), file('b/c', 3), file('b/d'), { path: 'l', link: 'b/c' }];
    const delta = manifestDelta(base, next);
    assert.deepEqual(delta, {
      changed: [file('b/c', 3), file('b/d'), { path: 'l', link: 'b/c' }],
      removed: ['z'],
    });
    assert.deepEqual(applyDelta(base, delta as never), next);
    assert.deepEqual(manifestDelta(next, next), { changed: [], removed: [] });
    // A mode is a difference too.
    assert.deepEqual(manifestDelta([file('x')], [file('x', 1, 0o755)])?.changed, [
      file('x', 1, 0o755),
    ]);
  });

  it('round-trips between unrelated random manifests', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const base = randomManifest(seed, 1 + (seed % 13) * 7);
      const next = randomManifest(seed * 31 + 7, 1 + (seed % 5) * 11);
      const delta = manifestDelta(base, next);
      assert.ok(delta);
      assert.deepEqual(applyDelta(base, delta), next, `seed ${seed}`);
      assert.deepEqual(applyDelta(base, { changed: [], removed: [] }), base);
    }
  });

  it('has no delta for a manifest out of code-unit order', () => {
    assert.equal(manifestDelta([file('b'), file('a')], [file('a')]), undefined);
    assert.equal(manifestDelta([file('a')], [file('a'), file('a')]), undefined);
  });

  it('refuses a delta that does not fit its base, saying why', () => {
    const base = [file('a'), file('b'), file('c')];
    const cases: Array<[ManifestEntry[], string[], RegExp]> = [
      [[], ['x'], /x is removed but not in the base/],
      [[], ['b', 'a'], /not in order/],
      [[], ['a', 'a'], /not in order, or repeat/],
      [[file('b', 2)], ['b'], /b is both removed and changed/],
      [[file('d'), file('c', 2)], [], /changed entries are not in order/],
      [[file('d'), file('d', 2)], [], /repeat a path/],
    ];
    for (const [changed, removed, why] of cases)
      assert.match(applyDelta(base, { changed, removed }) as string, why);
    assert.match(
      applyDelta([file('b'), file('a')], { changed: [], removed: [] }) as string,
      /base/,
    );
  });
});
