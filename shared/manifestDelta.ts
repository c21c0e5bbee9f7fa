import type { ManifestEntry } from './manifest';

/**
 * A manifest told as its differences from another (its base): the entries
 * that are new or differ, and the paths that are gone. Most syncs after the
 * first change a few files of thousands, so this is what a `sync` carries
 * when the agent still holds the base (protocol 6); the agent rebuilds the
 * whole manifest with applyDelta and checks it against the digest sent.
 *
 * Both sides order manifests by UTF-16 code unit (`<`), the order
 * dispatchers sort them in; a manifest in another order has no delta.
 */
export interface ManifestDelta {
  /** Entries of the new manifest that are not in the base as they are, in order. */
  changed: ManifestEntry[];
  /** Paths of the base that the new manifest does not have, in order. */
  removed: string[];
}

function sameEntry(a: ManifestEntry, b: ManifestEntry): boolean {
  if ('link' in a) return 'link' in b && a.link === b.link;
  return !('link' in b) && a.hash === b.hash && a.mode === b.mode && a.size === b.size;
}

function strictlySorted(entries: readonly ManifestEntry[]): boolean {
  for (let i = 1; i < entries.length; i++)
    if (!((entries[i - 1] as ManifestEntry).path < (entries[i] as ManifestEntry).path))
      return false;
  return true;
}

/** What turns `base` into `next`; undefined when either is not in code-unit order. */
export function manifestDelta(
  base: readonly ManifestEntry[],
  next: readonly ManifestEntry[],
): ManifestDelta | undefined {
  if (!strictlySorted(base) || !strictlySorted(next)) return undefined;
  const changed: ManifestEntry[] = [];
  const removed: string[] = [];
  let i = 0;
  let j = 0;
  while (i < base.length || j < next.length) {
    const b = base[i];
    const n = next[j];
    if (n === undefined || (b !== undefined && b.path < n.path)) {
      removed.push((b as ManifestEntry).path);
      i++;
    } else if (b === undefined || n.path < b.path) {
      changed.push(n);
      j++;
    } else {
      if (!sameEntry(b, n)) changed.push(n);
      i++;
      j++;
    }
  }
  return { changed, removed };
}

/**
 * The manifest `delta` makes of `base`, or why it makes none: `changed`
 * and `removed` must each be in code-unit order without repeats, every
 * removed path must be in the base and not also changed. O(base + delta).
 */
export function applyDelta(
  base: readonly ManifestEntry[],
  delta: ManifestDelta,
): ManifestEntry[] | string {
  const { changed, removed } = delta;
  if (!strictlySorted(base)) return 'the base manifest is not in order';
  if (!strictlySorted(changed)) return 'changed entries are not in order, or repeat a path';
  for (let k = 1; k < removed.length; k++)
    if (!((removed[k - 1] as string) < (removed[k] as string)))
      return 'removed paths are not in order, or repeat one';
  const out: ManifestEntry[] = [];
  let i = 0;
  let j = 0;
  let r = 0;
  while (i < base.length || j < changed.length) {
    const b = base[i];
    const c = changed[j];
    if (c === undefined || (b !== undefined && b.path < c.path)) {
      const entry = b as ManifestEntry;
      if (removed[r] === entry.path) r++;
      else out.push(entry);
      i++;
    } else {
      if (removed[r] === c.path) return `${c.path} is both removed and changed`;
      // A changed entry replaces the base's entry of its path, or is new.
      if (b !== undefined && b.path === c.path) i++;
      out.push(c);
      j++;
    }
  }
  if (r < removed.length) return `${removed[r]} is removed but not in the base manifest`;
  return out;
}
