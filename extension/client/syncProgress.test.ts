import assert from 'node:assert/strict';
import type { SyncProgressInfo } from '../../shared/rpc';
import { SyncProgressTracker } from './syncProgress';

describe('sync progress notifications', () => {
  const p = (filesSent: number, extra: Partial<SyncProgressInfo> = {}): SyncProgressInfo => ({
    agent: 'pi',
    workspace: 'w',
    filesSent,
    bytesSent: filesSent * 1024,
    files: 10,
    bytes: 10 * 1024,
    ...extra,
  });
  const sync = {
    agent: 'pi',
    workspace: 'w',
    root: '/r',
    files: 10,
    filesSent: 10,
    bytesSent: 0,
    removed: 0,
    kept: 0,
    waitedMs: 0,
    ms: 0,
    error: null,
  };

  it('opens one notification for a sync past a second, with files and bytes, closed at its end', () => {
    let t = 0;
    const log: string[] = [];
    const tracker = new SyncProgressTracker(
      (title) => {
        log.push(`open ${title}`);
        return { report: (m) => log.push(m), done: () => log.push('done') };
      },
      () => t,
    );
    tracker.progress(p(1));
    t = 500;
    tracker.progress(p(3));
    assert.deepEqual(log, [], 'quick syncs show nothing');
    t = 1200;
    tracker.progress(p(6));
    t = 1400;
    tracker.progress(p(9));
    tracker.synced(sync);
    assert.deepEqual(log, [
      'open Octask: syncing to pi',
      '6 of 10 files, 6.0 KiB of 10.0 KiB',
      '9 of 10 files, 9.0 KiB of 10.0 KiB',
      'done',
    ]);
  });

  it('shows at once a sync that waits for a running task', () => {
    const log: string[] = [];
    const tracker = new SyncProgressTracker(
      () => ({ report: (m) => log.push(m), done: () => undefined }),
      () => 0,
    );
    tracker.progress(p(0, { waitingForTasks: 1 }));
    assert.deepEqual(log, ['waiting for 1 running task of this workspace']);
  });
});
