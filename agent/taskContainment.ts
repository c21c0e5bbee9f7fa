import type { Logger } from '../shared/logger';
import type { TaskCgroup, TaskCgroups } from './cgroup';
import type { Keeper } from './keeper';
import { killMarked, newMarker, TASK_MARKER_VAR } from './taskMarker';
import { recordTask, removeTaskRecord } from './taskRecords';

/** How long a task runs before it is recorded on disk for a later agent to reap. */
const RECORD_AFTER_MS = 250;

/** What the agent holds once for all its tasks' containment. */
export interface ContainmentContext {
  workdir: string;
  logger: Logger;
  /** Ends tracked tasks if the agent dies (absent: nobody does). */
  keeper?: Keeper;
  /** Present only where the agent has a delegated cgroup folder. */
  cgroups?: TaskCgroups;
}

/**
 * Everything that makes one task's processes end with it, in the order the
 * runner meets them: `env` into the spawn, `started(pid)` right after it,
 * `signal()` where it signals the process group, `release()` once the task's
 * leader has exited. The runner keeps the process group; this adds the
 * marker, the keeper, the on-disk record and the cgroup.
 */
export class TaskContainment {
  readonly marker = newMarker();
  private cgroup: TaskCgroup | undefined;
  private pgid: number | undefined;
  private released = false;
  private recorded = false;
  private recordTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly context: ContainmentContext,
    readonly task: string,
    /** The dispatcher's id the task runs for. */
    readonly owner: string,
  ) {}

  /** Variables to add to the task's environment. */
  get env(): Record<string, string> {
    return { [TASK_MARKER_VAR]: this.marker };
  }

  /** The task's leader started (it leads its own process group). */
  started(pid: number): void {
    const { keeper, cgroups, logger } = this.context;
    this.pgid = pid;
    this.cgroup = cgroups?.createTaskCgroup(this.task, logger);
    // What the leader forks before it is moved is still caught by the marker.
    if (this.cgroup && !this.cgroup.add(pid)) logger.debug('task left before its cgroup', { pid });
    keeper?.track(this.task, pid, this.marker);
    // The record is for the rare case that the agent and its keeper both die
    // while the task runs: most tasks end sooner than that matters, and
    // writing, renaming and removing a file for each costs a busy agent
    // throughput, so it is written only once the task has run a moment.
    this.recordTimer = setTimeout(() => this.record(pid), RECORD_AFTER_MS);
    this.recordTimer.unref();
  }

  private record(pid: number): void {
    if (this.released) return;
    const { workdir, logger } = this.context;
    try {
      recordTask(workdir, {
        task: this.task,
        owner: this.owner,
        pid,
        pgid: pid,
        marker: this.marker,
      });
      this.recorded = true;
    } catch (err) {
      // Without a record only a restarted agent's reaping is lost; the task runs.
      logger.warn('cannot record the running task', { task: this.task, err });
    }
  }

  /**
   * Signals what left the task's group: marked processes, and with SIGKILL
   * the task's cgroup. Returns how many processes it reached outside the
   * group's own signal, which stays the runner's.
   */
  signal(signal: NodeJS.Signals): number {
    if (this.pgid === undefined) return 0;
    let reached = killMarked(this.marker, signal, undefined, this.pgid);
    if (signal === 'SIGKILL' && this.cgroup) reached += this.cgroup.kill();
    return reached;
  }

  /** The leader exited: kill whatever is left anywhere, forget the task. */
  async release(): Promise<void> {
    if (this.released || this.pgid === undefined) return;
    this.released = true;
    try {
      process.kill(-this.pgid, 'SIGKILL');
    } catch {
      // ESRCH: the group is empty.
    }
    this.signal('SIGKILL');
    clearTimeout(this.recordTimer);
    this.context.keeper?.untrack(this.task);
    if (this.recorded) removeTaskRecord(this.context.workdir, this.owner, this.task);
    if (this.cgroup && !(await this.cgroup.remove())) {
      this.context.logger.warn('task cgroup still busy; left in place', { path: this.cgroup.path });
    }
  }
}
