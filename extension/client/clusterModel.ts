import { ErrorCode } from '../../shared/errors';
import type {
  AgentInfo,
  ArtifactsInfo,
  LogEvent,
  OutputEvent,
  SyncInfo,
  SyncProgressInfo,
  TaskInfo,
  TaskSpec,
} from '../../shared/rpc';
import { Listeners } from './listeners';

/** How much of each task's output the editor keeps, and for how many finished tasks. */
export const OUTPUT_LIMIT = 2 * 1024 * 1024;
export const FINISHED_TASKS_KEPT = 200;
export const LOG_LINES_KEPT = 500;

export function isFinished(task: TaskInfo): boolean {
  return task.status !== 'pending' && task.status !== 'running';
}

/** One task's output as text, trimmed from the front beyond OUTPUT_LIMIT. */
export class TaskOutput {
  private parts: string[] = [];
  private size = 0;
  dropped = 0;

  append(text: string): void {
    this.parts.push(text);
    this.size += text.length;
    while (this.size > OUTPUT_LIMIT && this.parts.length > 1) {
      const first = this.parts.shift() as string;
      this.size -= first.length;
      this.dropped += first.length;
    }
  }

  text(): string {
    const head = this.dropped > 0 ? `[… ${this.dropped} earlier characters dropped …]\n` : '';
    return head + this.parts.join('');
  }
}

/**
 * What the editor knows of the cluster, fed by the dispatcher's
 * notifications: agents, tasks (running, queued, recent), each task's output,
 * and the event log. Plain data and events, so views and tests read one place.
 */
export class ClusterModel {
  readonly agents = new Map<string, AgentInfo>();
  readonly tasks = new Map<string, TaskInfo>();
  readonly outputs = new Map<string, TaskOutput>();
  readonly log: LogEvent[] = [];
  /** What was submitted for each task group, so a task can be run again. */
  readonly specs = new Map<string, TaskSpec>();

  readonly onAgents = new Listeners<AgentInfo | undefined>();
  readonly onTask = new Listeners<TaskInfo>();
  readonly onOutput = new Listeners<OutputEvent>();
  readonly onLog = new Listeners<LogEvent>();
  /** Passed through, not kept: task terminals report them as they happen. */
  readonly onSync = new Listeners<SyncInfo>();
  readonly onSyncProgress = new Listeners<SyncProgressInfo>();
  readonly onArtifacts = new Listeners<ArtifactsInfo>();

  applyAgent(agent: AgentInfo): void {
    // Keyed by address: an agent's id changes from its address to its own id after hello.
    this.agents.set(agent.address, agent);
    this.onAgents.fire(agent);
  }

  removeAgent(address: string): void {
    if (this.agents.delete(address)) this.onAgents.fire(undefined);
  }

  applyTask(task: TaskInfo): void {
    this.tasks.set(task.id, task);
    this.onTask.fire(task);
    if (isFinished(task)) this.trimFinished();
  }

  applyOutput(event: OutputEvent): void {
    let out = this.outputs.get(event.task);
    if (!out) this.outputs.set(event.task, (out = new TaskOutput()));
    out.append(event.text);
    this.onOutput.fire(event);
  }

  applyLog(event: LogEvent): void {
    this.log.push(event);
    if (this.log.length > LOG_LINES_KEPT) this.log.splice(0, this.log.length - LOG_LINES_KEPT);
    this.onLog.fire(event);
  }

  rememberSpec(group: string, spec: TaskSpec): void {
    this.specs.set(group, spec);
  }

  /**
   * The dispatcher process went away: its agents and unfinished tasks went
   * with it. Tasks are marked lost so that whoever waits on them stops waiting.
   */
  dispatcherLost(reason: string): void {
    const now = Date.now();
    for (const task of [...this.tasks.values()]) {
      if (isFinished(task)) continue;
      this.applyTask({
        ...task,
        status: 'lost',
        endedAt: now,
        durationMs: task.startedAt !== null ? now - task.startedAt : null,
        error: { code: ErrorCode.DispatcherLost, message: reason },
      });
    }
    this.agents.clear();
    this.onAgents.fire(undefined);
  }

  tasksOfGroup(group: string): TaskInfo[] {
    return [...this.tasks.values()].filter((t) => t.group === group);
  }

  /** Newest first: running, then queued, then finished. */
  taskList(): TaskInfo[] {
    const rank = (t: TaskInfo): number =>
      t.status === 'running' ? 0 : t.status === 'pending' ? 1 : 2;
    return [...this.tasks.values()].sort(
      (a, b) => rank(a) - rank(b) || b.queuedAt - a.queuedAt || (a.shard ?? 0) - (b.shard ?? 0),
    );
  }

  private trimFinished(): void {
    const finished = [...this.tasks.values()].filter(isFinished);
    for (const task of finished.slice(0, Math.max(0, finished.length - FINISHED_TASKS_KEPT))) {
      this.tasks.delete(task.id);
      this.outputs.delete(task.id);
    }
    const groups = new Set([...this.tasks.values()].map((t) => t.group));
    for (const group of this.specs.keys()) if (!groups.has(group)) this.specs.delete(group);
  }
}
