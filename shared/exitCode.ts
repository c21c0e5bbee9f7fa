/** Exit statuses of a run, shared by the CLI and the editor's task terminal. */
import type { TaskInfo } from './rpc';

/** Exit statuses of `octask run`, beyond the remote command's own. */
export const EXIT = {
  ok: 0,
  usage: 2,
  timedOut: 124,
  octaskFailure: 125,
  interrupted: 130,
} as const;

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGTERM: 15,
};

/** The exit status for one finished task, as a shell would give it. */
export function taskExitCode(task: TaskInfo): number {
  switch (task.status) {
    case 'completed':
      return EXIT.ok;
    case 'timed_out':
      return EXIT.timedOut;
    case 'cancelled':
      return EXIT.interrupted;
    case 'failed':
      if (task.error) return EXIT.octaskFailure;
      if (task.exitCode !== null) return task.exitCode;
      return task.signal ? 128 + (SIGNALS[task.signal] ?? 0) : 1;
    default:
      // lost, or still pending/running when we gave up: Octask's own failure.
      return EXIT.octaskFailure;
  }
}

/**
 * `octask run`'s status: the task's own for one task; for several, 0 when
 * all completed, else the first failure's in shard order.
 */
export function runExitCode(tasks: readonly TaskInfo[]): number {
  const ordered = [...tasks].sort((a, b) => (a.shard ?? 0) - (b.shard ?? 0));
  for (const task of ordered) {
    const code = taskExitCode(task);
    if (code !== EXIT.ok) return code;
  }
  return EXIT.ok;
}
