/**
 * The long-lived dispatcher's (the editor's) workspace preparation: per
 * (root, prepare options) it keeps a WatchedWorkspace, whose last
 * preparation and folder watch make preparing again after no change return
 * the same PreparedWorkspace at once, and after an edit re-hash only the
 * files that changed. Watches are bounded per workspace and in all; idle
 * workspaces are let go. The one-shot CLI uses prepareWorkspaceAt instead.
 */
import type { WatchFn } from './folderWatch';
import { WatchBudget } from './folderWatch';
import type { PrepareOptions } from './prepare';
import { hashCacheFile } from './prepare';
import type { WatchedPrepared, WatchSettings } from './watchedWorkspace';
import { WatchedWorkspace } from './watchedWorkspace';

export type { PrepareRoute, WatchedPrepared } from './watchedWorkspace';

export interface WorkspaceWatchesOptions {
  /** Folders one workspace may watch; past that it is prepared in full each time. */
  maxFolders?: number;
  /** Folders all workspaces together may watch (inotify watches are per user, shared with the editor). */
  maxWatches?: number;
  /** A workspace not prepared for this long stops being watched. */
  idleMs?: number;
  /** Workspaces watched at once; the least recently prepared is dropped first. */
  maxWorkspaces?: number;
  watch?: WatchFn;
  platform?: NodeJS.Platform;
  log?: (message: string) => void;
}

const DEFAULT_MAX_FOLDERS = 4000;
const DEFAULT_MAX_WATCHES = 8000;
const DEFAULT_IDLE_MS = 30 * 60_000;
const DEFAULT_MAX_WORKSPACES = 8;

/** Every watched workspace of one dispatcher; `close` when it shuts down. */
export class WorkspaceWatches {
  private readonly workspaces = new Map<string, WatchedWorkspace>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly settings: WatchSettings;
  private readonly maxWorkspaces: number;

  constructor(options: WorkspaceWatchesOptions = {}) {
    this.settings = {
      ...options,
      maxFolders: options.maxFolders ?? DEFAULT_MAX_FOLDERS,
      budget: new WatchBudget(options.maxWatches ?? DEFAULT_MAX_WATCHES),
    };
    this.maxWorkspaces = options.maxWorkspaces ?? DEFAULT_MAX_WORKSPACES;
    const idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
    this.sweeper = setInterval(() => this.sweep(idleMs), Math.min(idleMs, 60_000));
    this.sweeper.unref();
  }

  /** The preparation of `root` with `options`, as prepareWorkspaceAt gives it, from what changed since the last. */
  prepare(root: string, withFeed: PrepareOptions = {}): Promise<WatchedPrepared> {
    // The feed is this call's, not the watched workspace's.
    const { feed, ...options } = withFeed;
    const env = options.env ?? process.env;
    const key = JSON.stringify([
      root,
      options.include ?? [],
      options.exclude ?? [],
      options.inputs ?? [],
      options.preserve ?? [],
      options.clean ?? false,
      hashCacheFile('', env),
    ]);
    let ws = this.workspaces.get(key);
    // Re-inserted last: the Map's order is then recency of use.
    if (ws) this.workspaces.delete(key);
    else {
      ws = new WatchedWorkspace(root, { ...options, env }, this.settings);
      this.dropOldest(this.maxWorkspaces);
    }
    this.workspaces.set(key, ws);
    return ws.prepare(feed);
  }

  /** Workspaces watched now. */
  get size(): number {
    return this.workspaces.size;
  }

  private dropOldest(keep: number): void {
    for (const [key, ws] of this.workspaces) {
      if (this.workspaces.size < keep) break;
      ws.close();
      this.workspaces.delete(key);
    }
  }

  private sweep(idleMs: number): void {
    const now = Date.now();
    for (const [key, ws] of this.workspaces) {
      if (now - ws.lastUsed < idleMs) continue;
      ws.close();
      this.workspaces.delete(key);
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const ws of this.workspaces.values()) ws.close();
    this.workspaces.clear();
  }
}
