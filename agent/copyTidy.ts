import type { Dirent } from 'node:fs';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfinedTree } from '../shared/confinedFs';
import { isTempName } from '../shared/confinedFs';
import { createMatcher } from '../shared/glob';

/** What a sync removes from a copy, and what it leaves to the tasks. */
export interface TidyOptions {
  /** Paths the manifest lists now (files and links). */
  listed: ReadonlySet<string>;
  /** Folders the manifest needs (every parent of a listed path). */
  folders: ReadonlySet<string>;
  /** Paths that came from the workspace at the last sync (the copy's state). */
  tracked: ReadonlySet<string>;
  /** Globs of paths never removed, at any depth. */
  preserve: readonly string[];
  /** Remove everything not listed and not preserved: a fresh copy. */
  clean: boolean;
}

export interface TidyResult {
  /** Files and links removed. */
  removed: number;
  /** Files and links the tasks made (or --preserve kept) that stay. */
  kept: number;
}

/**
 * Tidies a copy after a layout, as a checkout would: a file that came from
 * the workspace and left it is removed; what the tasks made (dependencies,
 * build output, caches) stays, unless `clean`. `preserve` wins over both.
 * Every change goes through `tree`: symlinks are removed or kept as links,
 * never followed.
 */
export function tidyCopy(tree: ConfinedTree, options: TidyOptions): TidyResult {
  const preserved = createMatcher(options.preserve);
  const result: TidyResult = { removed: 0, kept: 0 };
  let folders: Set<string> | undefined;
  // Only an emptied folder asks, so most syncs never build this.
  const trackedFolders = (): Set<string> => (folders ??= parentsOf(options.tracked));
  /** Returns whether `rel` still holds anything. */
  const walk = (rel: string): boolean => {
    let left = 0;
    for (const entry of readdirSync(tree.folder(rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (options.listed.has(path)) {
        left++;
        continue;
      }
      // A copy interrupted half-way leaves its temporary file: never the user's.
      const leftover = isTempName(entry.name);
      if (entry.isDirectory() && !leftover) {
        if (walk(path) || options.folders.has(path)) left++;
        else if (options.clean || trackedFolders().has(path)) tree.remove(path);
        else left++;
        continue;
      }
      const remove = leftover || (!preserved(path) && (options.clean || options.tracked.has(path)));
      if (remove) {
        tree.remove(path);
        if (!leftover) result.removed++;
      } else {
        result.kept++;
        left++;
      }
    }
    return left > 0;
  };
  walk('');
  return result;
}

/** Every folder above the given paths: a folder that held workspace files and is now empty goes. */
function parentsOf(paths: ReadonlySet<string>): Set<string> {
  const out = new Set<string>();
  for (const path of paths)
    for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
      const parent = path.slice(0, i);
      if (out.has(parent)) break;
      out.add(parent);
    }
  return out;
}

/** How long a count works between yields to the event loop. */
const COUNT_SLICE_MS = 15;

/**
 * The files and links in the copy at `root` that are not `tracked` (what
 * tasks made), counted without changing anything; undefined when `valid`
 * turns false midway (a task or a layout began: the count would be stale).
 * Read by plain path: a link a task made is counted, never followed.
 */
export async function countMade(
  root: string,
  tracked: ReadonlySet<string>,
  valid: () => boolean,
): Promise<number | undefined> {
  let made = 0;
  const pending = [''];
  let slice = performance.now();
  for (let rel = pending.pop(); rel !== undefined; rel = pending.pop()) {
    let entries: Dirent[];
    try {
      entries = readdirSync(rel ? join(root, rel) : root, { withFileTypes: true });
    } catch {
      continue; // gone, or replaced by a file, since it was listed
    }
    for (const entry of entries) {
      if (isTempName(entry.name)) continue;
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) pending.push(path);
      else if (!tracked.has(path)) made++;
    }
    if (performance.now() - slice > COUNT_SLICE_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      if (!valid()) return undefined;
      slice = performance.now();
    }
  }
  return valid() ? made : undefined;
}
