import { createHash } from 'node:crypto';
import { mkdir, rm, rmdir, stat } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, OctaskError } from '../shared/errors';
import type { Logger } from '../shared/logger';
import type { RunMessage } from '../shared/protocol';
import { checkRelativePath } from '../shared/workspacePath';
import type { WorkspaceCopies } from './workspaceCopy';

/** A task's working folder: made (or checked) before it starts, cleaned after. */
export interface TaskFolder {
  cwd: string;
  /** The workspace copy's root, when the task runs in one. */
  root?: string;
  prepare(done: (err: Error | null) => void): void;
  cleanup(): void;
}

/**
 * Where a task runs: its workspace copy (which must exist), or a scratch
 * folder made for it under `workdir/tasks`. Throws on a cwd that could leave
 * the copy, before anything is queued.
 */
export function taskFolder(
  message: RunMessage,
  copies: WorkspaceCopies,
  workdir: string,
  scratchKey: string,
  logger: Logger,
): TaskFolder {
  if (message.workspace !== undefined) {
    const root = copies.dirOf(message.workspace);
    const sub = message.cwd && message.cwd !== '.' ? message.cwd : '';
    const bad = sub ? checkRelativePath(sub) : null;
    if (bad) throw new OctaskError(ErrorCode.BadPath, `--cwd ${JSON.stringify(sub)}: ${bad}`);
    const cwd = sub ? join(root, sub) : root;
    return {
      cwd,
      root,
      prepare: (done) =>
        stat(cwd, (err, st) => {
          if (!err && st.isDirectory()) return done(null);
          const what = sub ? `has no folder ${sub}` : 'is not synced to this agent';
          done(new OctaskError(ErrorCode.NoWorkspace, `workspace ${message.workspace} ${what}`));
        }),
      cleanup: () => undefined,
    };
  }
  const scratch = join(workdir, 'tasks', scratchName(scratchKey));
  return {
    cwd: scratch,
    // Made off the event loop: a mkdir on the loop costs more than the rest of a task's bookkeeping.
    prepare: (done) => mkdir(scratch, { recursive: true }, (err) => done(err ?? null)),
    // Most tasks leave their folder empty: one rmdir, and rm -r only if not.
    cleanup: () =>
      rmdir(scratch, (err) => {
        if (!err || err.code === 'ENOENT') return;
        rm(scratch, { recursive: true, force: true }, (rmErr) => {
          if (rmErr) logger.warn('could not remove task folder', { scratch, err: rmErr });
        });
      }),
  };
}

/** Task ids come from the network: keep only safe characters for a file or folder name. */
export function scratchName(task: string): string {
  const safe = task.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
  return /^[A-Za-z0-9_-]/.test(safe) && safe === task
    ? safe
    : `t-${createHash('sha256').update(task).digest('hex').slice(0, 24)}`;
}
