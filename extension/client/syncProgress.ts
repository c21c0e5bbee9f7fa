import type { SyncInfo, SyncProgressInfo } from '../../shared/rpc';
import { count, formatBytes } from '../../shared/syncSummary';

/** A shown progress notification: updated in place, closed once. */
export interface ProgressHandle {
  report(message: string): void;
  done(): void;
}

/** A sync is shown once it has run this long. */
const SHOW_AFTER_MS = 1000;

/**
 * Which syncs deserve a progress notification (those running over a
 * second), with files and bytes sent; closed when the sync ends. No
 * vscode here: `open` makes the notification.
 */
export class SyncProgressTracker {
  private readonly syncs = new Map<string, { since: number; handle?: ProgressHandle }>();

  constructor(
    private readonly open: (title: string) => ProgressHandle,
    private readonly now: () => number = () => performance.now(),
  ) {}

  progress(p: SyncProgressInfo): void {
    const key = `${p.agent}\0${p.workspace}`;
    let s = this.syncs.get(key);
    if (!s) this.syncs.set(key, (s = { since: this.now() }));
    const waiting =
      p.waitingForTasks !== undefined
        ? `waiting for ${p.waitingForTasks} running task${p.waitingForTasks === 1 ? '' : 's'} of this workspace`
        : '';
    if (!s.handle && (waiting || this.now() - s.since >= SHOW_AFTER_MS))
      s.handle = this.open(`Octask: syncing to ${p.agent}`);
    s.handle?.report(
      waiting ||
        `${count(p.filesSent)} of ${count(p.files)} files, ${formatBytes(p.bytesSent)} of ${formatBytes(p.bytes)}`,
    );
  }

  synced(s: SyncInfo): void {
    const key = `${s.agent}\0${s.workspace}`;
    this.syncs.get(key)?.handle?.done();
    this.syncs.delete(key);
  }

  dispose(): void {
    for (const s of this.syncs.values()) s.handle?.done();
    this.syncs.clear();
  }
}
