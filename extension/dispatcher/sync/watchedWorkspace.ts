/**
 * One watched workspace (see workspaceWatch.ts): its last preparation, the
 * events since, and how each prepare is answered from them. Correct before
 * fast: whatever the events cannot tell precisely (a new entry, a folder
 * moved, git's index or ignore rules changed, a watcher error) means
 * listing again, or watching anew; where watching is unavailable each
 * prepare is a full one.
 */
import { ManifestHistory } from './manifestHistory';
import { lstatSync, statfsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ManifestEntry, ManifestProblem } from '../../../shared/manifest';
import type { WatchBudget, WatchFn } from './folderWatch';
import {
  FolderWatch,
  findGitPlaces,
  foldersAbove,
  foldersUnder,
  ignoredFolders,
} from './folderWatch';
import { HashCache } from './hashCache';
import { buildManifest } from './manifest';
import type { WorkspaceFeed } from './workspaceFeed';
import type { Prepared, PrepareOptions } from './prepare';
import { checkWorkspaceRoot, hashCacheFile, listFor } from './prepare';
import type { PreparedWorkspace } from './preparedWorkspace';
import { prepareWorkspace, workspaceId } from './preparedWorkspace';

/** How a prepare was answered, from cheapest to dearest. */
export type PrepareRoute =
  /** Nothing happened since the last one: that preparation, as it was. */
  | 'unchanged'
  /** Only listed files changed: those examined again. */
  | 'update'
  /** The file set may have changed: listed again; paths new to it, and those events named, examined. */
  | 'relist'
  /** First time, or the folders to watch may have changed: watched anew, listed, every file stat'ed. */
  | 'rewatch'
  /** Watching is off here or failed: a full preparation, the hash cache kept in memory. */
  | 'unwatched';

export interface WatchedPrepared extends Prepared {
  route: PrepareRoute;
  /** Paths stat'ed (and hashed if their stamp changed) for this answer. */
  examined: number;
}

/** Paths seen to stay out of the file set (ignored build output) remembered at most. */
const MAX_KNOWN_UNLISTED = 10_000;

/**
 * statfs types of network and FUSE file systems (NFS, SMB/CIFS, FUSE,
 * 9p as in WSL): inotify does not see changes made by another machine.
 */
const UNWATCHABLE_FS = new Set([0x6969, 0x517b, 0xff534d42, 0xfe534d42, 0x65735546, 0x01021997]);

const turn = (): Promise<void> => new Promise((res) => setImmediate(res));

/**
 * Lets every file event already queued by the kernel reach its listener:
 * inotify queues an event as the write happens, but Node reads the queue in
 * its poll phase; a prepare called from that phase (an RPC request) would
 * otherwise run its check-phase continuation before the next poll.
 */
async function drainEvents(): Promise<void> {
  await turn();
  await turn();
}

function folderPrefixesOf(paths: readonly string[]): Set<string> {
  const folders = new Set<string>();
  for (const p of paths) {
    for (let i = p.indexOf('/'); i >= 0; i = p.indexOf('/', i + 1)) folders.add(p.slice(0, i));
  }
  return folders;
}

interface State {
  /** Sorted, as listWorkspaceFiles gives them. */
  listed: string[];
  listedSet: Set<string>;
  listedFolders: Set<string>;
  listSkipped: ManifestProblem[];
  entries: Map<string, ManifestEntry>;
  problems: Map<string, ManifestProblem>;
  /** Listed paths that were symlinks (entries or problems). */
  symlinks: Set<string>;
  /** Existing files that a listing left out (ignored): events on them change nothing. */
  knownUnlisted: Set<string>;
  workspace: PreparedWorkspace;
}

/** What a WatchedWorkspace is given by WorkspaceWatches. */
export interface WatchSettings {
  maxFolders: number;
  /** Shared by every workspace of the dispatcher. */
  budget: WatchBudget;
  watch?: WatchFn;
  platform?: NodeJS.Platform;
  log?: (message: string) => void;
}

type Level = 'none' | 'relist' | 'rewatch';
const LEVELS: readonly Level[] = ['none', 'relist', 'rewatch'];

/** One workspace with one set of prepare options: its last preparation, and the watch that keeps it true. */
export class WatchedWorkspace {
  lastUsed = Date.now();
  private readonly id: string;
  private cache: HashCache | null = null;
  /** The manifests this watch prepared lately: an agent holding one is sent only the difference. */
  private readonly history = new ManifestHistory();
  private watch: FolderWatch | null = null;
  /** Why this workspace is prepared in full each time; undefined until its root was seen. */
  private unwatchable: string | null | undefined;
  private level: Level = 'rewatch';
  private dirty = new Set<string>();
  private state: State | null = null;
  private rootIno = -1;
  /** Folders git ignored whole when last watched: one made again (a build's output) changes nothing. */
  private ignored = new Set<string>();
  private examined = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** The feed of the preparation under way, for the one full hashing it may do. */
  private feed: WorkspaceFeed | undefined;

  constructor(
    private readonly root: string,
    private readonly options: PrepareOptions,
    private readonly settings: WatchSettings,
  ) {
    this.id = workspaceId(hostname(), root);
  }

  /**
   * Prepares, one call at a time. A preparation that hashes the whole
   * workspace (the first) tells `feed` each entry as it goes, so a first
   * sync can stream; the caller ends the feed in any case.
   */
  prepare(feed?: WorkspaceFeed): Promise<WatchedPrepared> {
    const run = this.queue.then(async () => {
      this.feed = feed;
      try {
        return await this.run();
      } finally {
        this.feed = undefined;
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.watch?.close();
    this.watch = null;
    this.state = null;
  }

  private escalate(level: Level): void {
    if (LEVELS.indexOf(level) > LEVELS.indexOf(this.level)) this.level = level;
  }

  private async run(): Promise<WatchedPrepared> {
    const started = performance.now();
    this.lastUsed = Date.now();
    checkWorkspaceRoot(this.root);
    await drainEvents();
    this.examined = 0;
    const route = await this.refresh();
    const state = this.state;
    if (!state) throw new Error('no preparation after a refresh');
    return {
      workspace: state.workspace,
      skipped: [...state.listSkipped, ...sortedByListing(state.problems, state.listed)],
      ms: Math.round(performance.now() - started),
      route,
      examined: this.examined,
    };
  }

  private async refresh(): Promise<PrepareRoute> {
    this.unwatchable ??= whyUnwatchable(this.root, this.settings.platform ?? process.platform);
    if (this.unwatchable !== null) return this.full();
    const rootIno = lstatSync(this.root).ino;
    // The root itself replaced (a checkout moved away and another put there): watches follow the old one.
    if (rootIno !== this.rootIno) this.escalate('rewatch');
    const state = this.state;
    if (this.watch === null || state === null || this.level === 'rewatch') return this.rewatch();
    const dirty = this.dirty;
    this.dirty = new Set();
    const level = this.level;
    this.level = 'none';
    const changed: string[] = [];
    const appeared: string[] = [];
    for (const path of dirty) {
      if (state.listedSet.has(path)) {
        changed.push(path);
        continue;
      }
      // A folder that holds synced files, or a watched one, renamed or changed: its watch may now be elsewhere.
      if (state.listedFolders.has(path) || this.watch.has(path)) return this.rewatch();
      const stats = lstatSync(join(this.root, path), { throwIfNoEntry: false });
      // Came and went (an editor's temporary file), or an unlisted entry removed: the set is the same.
      if (stats === undefined) continue;
      if (stats.isDirectory()) {
        if (this.ignored.has(path)) continue;
        return this.rewatch();
      }
      if (!state.knownUnlisted.has(path)) appeared.push(path);
    }
    if (level === 'relist' || appeared.length > 0) return this.relist(appeared, changed);
    if (changed.length === 0) return 'unchanged';
    return this.update(state, changed);
  }

  /** Re-examines only `changed` (listed paths), unless one is or was a link or is now a folder. */
  private async update(state: State, changed: string[]): Promise<PrepareRoute> {
    for (const path of changed) {
      const stats = lstatSync(join(this.root, path), { throwIfNoEntry: false });
      if (stats?.isDirectory()) return this.rewatch();
      // Links are judged against every other link (chains): rebuild the whole manifest.
      if (stats?.isSymbolicLink() || state.symlinks.has(path)) return this.relist([], 'all');
    }
    const manifest = await buildManifest(this.root, changed, await this.hashCache());
    this.examined += changed.length;
    for (const path of changed) {
      state.entries.delete(path);
      state.problems.delete(path);
    }
    for (const e of manifest.entries) state.entries.set(e.path, e);
    for (const p of manifest.problems) state.problems.set(p.path, p);
    state.workspace = this.workspaceOf(state.listed, state.entries);
    return 'update';
  }

  /**
   * Lists the files again. With `changed` (the listed paths events named),
   * only paths new to the listing and those are examined: every other
   * listed file had no event, so its entry holds. 'all' examines every file.
   */
  private async relist(
    appeared: readonly string[],
    changed: readonly string[] | 'all',
  ): Promise<PrepareRoute> {
    const watch = this.watch;
    if (watch === null) return this.rewatch();
    const list = await listFor(this.root, this.options);
    const listedFolders = folderPrefixesOf(list.files);
    try {
      // Files git tracks inside ignored folders (added with -f) are synced, so watched too.
      for (const folder of listedFolders) watch.add(folder);
    } catch (err) {
      return this.giveUp(err);
    }
    const known = new Set(this.state?.knownUnlisted ?? []);
    for (const p of appeared) known.add(p);
    const old = this.state;
    const diff = old && changed !== 'all' ? this.listingDiff(old, list.files, changed) : null;
    this.state =
      old && diff
        ? await this.patch(old, list, listedFolders, known, diff)
        : await this.build(list, listedFolders, known);
    return 'relist';
  }

  /** What a new listing changes; null when links are involved (judged all together). */
  private listingDiff(
    old: State,
    listed: readonly string[],
    changed: readonly string[],
  ): { listedSet: Set<string>; removed: string[]; examine: string[] } | null {
    const listedSet = new Set(listed);
    const removed = old.listed.filter((p) => !listedSet.has(p));
    const examine = [
      ...listed.filter((p) => !old.listedSet.has(p)),
      ...changed.filter((p) => listedSet.has(p)),
    ];
    const isLink = (p: string): boolean =>
      old.symlinks.has(p) ||
      (lstatSync(join(this.root, p), { throwIfNoEntry: false })?.isSymbolicLink() ?? false);
    if (removed.some((p) => old.symlinks.has(p)) || examine.some(isLink)) return null;
    return { listedSet, removed, examine };
  }

  private async patch(
    old: State,
    list: Awaited<ReturnType<typeof listFor>>,
    listedFolders: Set<string>,
    known: Set<string>,
    diff: { listedSet: Set<string>; removed: string[]; examine: string[] },
  ): Promise<State> {
    const manifest = await buildManifest(this.root, diff.examine, await this.hashCache());
    this.examined += diff.examine.length;
    for (const p of [...diff.removed, ...diff.examine]) {
      old.entries.delete(p);
      old.problems.delete(p);
    }
    for (const e of manifest.entries) old.entries.set(e.path, e);
    for (const p of manifest.problems) old.problems.set(p.path, p);
    for (const p of known) if (diff.listedSet.has(p)) known.delete(p);
    return {
      ...old,
      listed: list.files,
      listedSet: diff.listedSet,
      listedFolders,
      listSkipped: list.skipped,
      knownUnlisted: known.size > MAX_KNOWN_UNLISTED ? new Set() : known,
      workspace: this.workspaceOf(list.files, old.entries),
    };
  }

  private async rewatch(): Promise<PrepareRoute> {
    this.watch?.close();
    this.watch = null;
    this.level = 'none';
    this.dirty = new Set();
    const watch = new FolderWatch(
      this.root,
      {
        path: (rel) => {
          // Ignore rules, or a repository made or removed (git's file set or a walk): all may change.
          const name = rel.slice(rel.lastIndexOf('/') + 1);
          if (name === '.gitignore' || name.toLowerCase() === '.git') this.escalate('rewatch');
          else this.dirty.add(rel);
        },
        doubt: (why) => {
          this.settings.log?.(`${this.root}: ${why}; watching again`);
          this.escalate('rewatch');
        },
      },
      this.settings.maxFolders,
      this.settings.budget,
      this.settings.watch,
    );
    try {
      this.rootIno = lstatSync(this.root).ino;
      await this.watchAll(watch);
    } catch (err) {
      watch.close();
      return this.giveUp(err);
    }
    this.watch = watch;
    this.state = null;
    await this.relist([], 'all');
    return this.unwatchable === null ? 'rewatch' : 'unwatched';
  }

  private async watchAll(watch: FolderWatch): Promise<void> {
    const git = await findGitPlaces(this.root);
    const skip =
      git && (this.options.include ?? []).length === 0
        ? await ignoredFolders(this.root)
        : new Set<string>();
    this.ignored = skip;
    for (const folder of foldersUnder(this.root, skip, this.settings.maxFolders)) watch.add(folder);
    if (!git) return;
    // The index (tracked files) and info/exclude (ignore rules) decide the file set too.
    // A lock file comes before the rename that finishes the change, which is seen in turn.
    watch.addOutside(git.gitDir, (name) => {
      if (name === 'info') this.escalate('rewatch');
      else if (!name.endsWith('.lock')) this.escalate('relist');
    });
    if (git.commonDir !== git.gitDir)
      watch.addOutside(git.commonDir, (name) => name === 'info' && this.escalate('rewatch'));
    if (lstatSync(join(git.commonDir, 'info'), { throwIfNoEntry: false })?.isDirectory())
      watch.addOutside(join(git.commonDir, 'info'), () => this.escalate('rewatch'));
    for (const folder of foldersAbove(git.topLevel, this.root))
      watch.addOutside(folder, (name) => name === '.gitignore' && this.escalate('rewatch'));
  }

  private async giveUp(err: unknown): Promise<PrepareRoute> {
    this.watch?.close();
    this.watch = null;
    this.unwatchable = (err as Error).message;
    this.settings.log?.(
      `${this.root}: not watched (${this.unwatchable}); each sync prepares it in full`,
    );
    return this.full();
  }

  /** As prepareWorkspaceAt, but with the hash cache kept in memory between calls. */
  private async full(): Promise<PrepareRoute> {
    const list = await listFor(this.root, this.options);
    this.state = await this.build(list, folderPrefixesOf(list.files), new Set());
    return 'unwatched';
  }

  private async build(
    list: Awaited<ReturnType<typeof listFor>>,
    listedFolders: Set<string>,
    known: Set<string>,
  ): Promise<State> {
    const cache = await this.hashCache();
    cache.resetUsage();
    const feed = this.feed;
    this.feed = undefined;
    feed?.open({
      id: this.id,
      root: this.root,
      preserve: [...(this.options.preserve ?? [])],
      clean: this.options.clean ?? false,
      contents: cache.kept,
    });
    const manifest = await buildManifest(this.root, list.files, cache, undefined, feed);
    this.examined += list.files.length;
    cache.pruneUnused();
    const listedSet = new Set(list.files);
    for (const p of known) if (listedSet.has(p)) known.delete(p);
    const entries = new Map(manifest.entries.map((e) => [e.path, e]));
    const workspace = this.workspaceOf(list.files, entries);
    // A streamed sync sends its last part now; the cache is written meanwhile.
    feed?.end(workspace);
    await cache.save().catch((err: Error) => this.settings.log?.(`hash cache: ${err.message}`));
    return {
      listed: list.files,
      listedSet,
      listedFolders,
      listSkipped: list.skipped,
      entries,
      problems: new Map(manifest.problems.map((p) => [p.path, p])),
      symlinks: new Set(manifest.symlinks),
      knownUnlisted: known.size > MAX_KNOWN_UNLISTED ? new Set() : known,
      workspace,
    };
  }

  private workspaceOf(
    listed: readonly string[],
    entries: ReadonlyMap<string, ManifestEntry>,
  ): PreparedWorkspace {
    const sorted: ManifestEntry[] = [];
    for (const p of listed) {
      const e = entries.get(p);
      if (e) sorted.push(e);
    }
    return this.history.attach(
      prepareWorkspace(
        this.id,
        this.root,
        sorted,
        [...(this.options.preserve ?? [])],
        this.options.clean ?? false,
      ),
    );
  }

  private async hashCache(): Promise<HashCache> {
    this.cache ??= await HashCache.load(hashCacheFile(this.id, this.options.env ?? process.env));
    return this.cache;
  }
}

function sortedByListing(
  problems: ReadonlyMap<string, ManifestProblem>,
  listed: readonly string[],
): ManifestProblem[] {
  if (problems.size === 0) return [];
  return listed.flatMap((p) => {
    const problem = problems.get(p);
    return problem ? [problem] : [];
  });
}

/** Why `root` cannot be watched here, or null. */
function whyUnwatchable(root: string, platform: NodeJS.Platform): string | null {
  // macOS delivers FSEvents late (a change just made could be missed) and
  // Windows is untested: both prepare in full, which is always correct.
  if (platform !== 'linux') return `file watching is used on Linux only, not ${platform}`;
  try {
    if (UNWATCHABLE_FS.has(statfsSync(root).type))
      return 'it is on a network or FUSE file system, whose changes inotify may not see';
  } catch {
    return 'its file system could not be identified';
  }
  return null;
}
