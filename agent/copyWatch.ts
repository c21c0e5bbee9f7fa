import type { FSWatcher } from 'node:fs';
import { watch } from 'node:fs';
import { join } from 'node:path';

/**
 * Most folders one copy's watch takes: each is an inotify watch on Linux,
 * and the per-user limit is 8,192 on many kernels (phones among them).
 * A copy with more folders is checked by a stat of each file instead.
 */
export const MAX_WATCHED_FOLDERS = 1000;

/**
 * Watches the folders that hold the files a layout wrote, so a later check
 * can tell "nothing of the workspace's was touched" without a stat of each
 * file. Only names the layout wrote (files, and the folders on their way)
 * count: a build writing `src/x.o` beside `src/x.c` leaves the watch clean.
 * Anything it cannot vouch for (an error, a name it is not told, a watched
 * folder gone) makes it dirty for good, and the caller stats instead.
 */
export class CopyWatch {
  private readonly watchers: FSWatcher[] = [];
  private touched = false;

  private constructor() {}

  /**
   * A watch on `root` and the folders of `paths` (relative, `/`-separated),
   * or undefined when there are too many folders or watching fails here.
   */
  static start(
    root: string,
    paths: Iterable<string>,
    platform: string = process.platform,
  ): CopyWatch | undefined {
    // inotify queues an event as the write happens, so a turn of the loop
    // delivers it; macOS's FSEvents may deliver it later, and Windows is
    // untried: there, every check stats the files.
    if (platform !== 'linux' && platform !== 'android') return undefined;
    const names = new Map<string, Set<string>>([['', new Set()]]);
    for (const path of paths) {
      let child = path;
      for (let cut = child.lastIndexOf('/'); ; cut = child.lastIndexOf('/')) {
        const folder = cut === -1 ? '' : child.slice(0, cut);
        let set = names.get(folder);
        const known = set !== undefined;
        if (!set) names.set(folder, (set = new Set()));
        set.add(child.slice(cut + 1));
        if (cut === -1 || known) break;
        child = folder;
      }
      if (names.size > MAX_WATCHED_FOLDERS) return undefined;
    }
    const copyWatch = new CopyWatch();
    try {
      for (const [folder, watched] of names) {
        const watcher = watch(folder ? join(root, folder) : root, { persistent: false });
        watcher.on('change', (_event, name) => {
          if (name === null || watched.has(String(name))) copyWatch.touched = true;
        });
        watcher.on('error', () => (copyWatch.touched = true));
        copyWatch.watchers.push(watcher);
      }
    } catch {
      copyWatch.close();
      return undefined;
    }
    return copyWatch;
  }

  /** Whether no watched name changed since the watch began (or since `reset`). */
  get clean(): boolean {
    return !this.touched;
  }

  /** The files were just seen as laid out: what happened before no longer counts. */
  reset(): void {
    this.touched = false;
  }

  /** Something outside the watch found a change: dirty until the files are seen as laid out again. */
  markTouched(): void {
    this.touched = true;
  }

  close(): void {
    for (const w of this.watchers.splice(0)) w.close();
    this.touched = true;
  }
}
