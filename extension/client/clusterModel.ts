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
import { runLabel } from './format';
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
  /** Made by live output since this window started, before its earlier output was read back. */
  fresh = false;

  /** Puts output from before this window's dispatcher started in front of what came since. */
  prepend(text: string): void {
    if (text === '') return;
    this.parts.unshift(text);
    this.size += text.length;
    this.fresh = false;
    this.append('');
  }

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
  /** The VS Code task label each group was run under, when it had one. */
  readonly labels = new Map<string, string>();
  /** Agents removed by the user, until they are added again or come back online. */
  private readonly removed = new Set<string>();
  /** Tasks this window saw queued: all their output came live, none is to be read back. */
  private readonly seenStart = new Set<string>();
  /** Finished tasks the user cleared: a later listing must not bring them back. */
  private readonly cleared = new Set<string>();

  readonly onAgents = new Listeners<AgentInfo | undefined>();
  readonly onTask = new Listeners<TaskInfo>();
  readonly onOutput = new Listeners<OutputEvent>();
  readonly onLog = new Listeners<LogEvent>();
  /** Passed through, not kept: task terminals report them as they happen. */
  readonly onSync = new Listeners<SyncInfo>();
  readonly onSyncProgress = new Listeners<SyncProgressInfo>();
  readonly onArtifacts = new Listeners<ArtifactsInfo>();
  /** Tasks left the model at once (Clear Finished). */
  readonly onTasksRemoved = new Listeners<string[]>();

  applyAgent(agent: AgentInfo): void {
    // A removed agent's link reports its closing (and a last load) after the removal: that must
    // not bring it back. mDNS finding it online anew does; a listed one comes back by agentAdded.
    const live = agent.status === 'online' || agent.status === 'busy';
    if (this.removed.has(agent.address) && (agent.source === 'listed' || !live)) return;
    this.removed.delete(agent.address);
    // Refused (a wrong key) or gone, an agent is known only by its address: keep the name it had.
    const before = this.agents.get(agent.address);
    const named =
      agent.name === agent.address && before && before.name !== before.address
        ? { ...agent, name: before.name, label: before.label }
        : agent;
    // Keyed by address: an agent's id changes from its address to its own id after hello.
    this.agents.set(agent.address, named);
    this.onAgents.fire(named);
  }

  /** An agent the user added (by address): its reports count again, whatever they say. */
  agentAdded(agent: AgentInfo): void {
    this.removed.delete(agent.address);
    this.applyAgent(agent);
  }

  removeAgent(address: string): void {
    this.removed.add(address);
    if (this.agents.delete(address)) this.onAgents.fire(undefined);
  }

  applyTask(task: TaskInfo): void {
    if (this.cleared.has(task.id) && isFinished(task)) return;
    if (!this.tasks.has(task.id) && task.status === 'pending') this.seenStart.add(task.id);
    this.tasks.set(task.id, task);
    this.onTask.fire(task);
    if (isFinished(task)) this.trimFinished();
  }

  applyOutput(event: OutputEvent): void {
    let out = this.outputs.get(event.task);
    if (!out) {
      this.outputs.set(event.task, (out = new TaskOutput()));
      // A task this window did not see start: its earlier output is still to be read back.
      out.fresh = !this.seenStart.has(event.task);
    }
    out.append(event.text);
    this.onOutput.fire(event);
  }

  applyLog(event: LogEvent): void {
    this.log.push(event);
    if (this.log.length > LOG_LINES_KEPT) this.log.splice(0, this.log.length - LOG_LINES_KEPT);
    this.onLog.fire(event);
  }

  rememberSpec(group: string, spec: TaskSpec, label?: string): void {
    this.specs.set(group, spec);
    if (label) this.labels.set(group, label);
  }

  /** A group's label for views and titles: its task label, else its command shortened. */
  labelOf(group: string, command: string): string {
    return runLabel(command, this.labels.get(group));
  }

  /** Drops every finished task and its output ("Clear Finished"); returns how many. */
  clearFinished(): number {
    const gone = [...this.tasks.values()].filter(isFinished).map((t) => t.id);
    for (const id of gone) {
      this.tasks.delete(id);
      this.outputs.delete(id);
      this.cleared.add(id);
    }
    this.forgetUnusedGroups();
    if (gone.length > 0) this.onTasksRemoved.fire(gone);
    return gone.length;
  }

  /**
   * Runs (one submit: its shards, or one task per agent for `all`), in the
   * order of taskList: those running first, then queued, then the newest finished.
   */
  runList(): Array<{ group: string; tasks: TaskInfo[] }> {
    const runs = new Map<string, TaskInfo[]>();
    for (const t of this.taskList()) {
      const list = runs.get(t.group);
      if (list) list.push(t);
      else runs.set(t.group, [t]);
    }
    return [...runs].map(([group, tasks]) => ({
      group,
      tasks: tasks.sort((a, b) => (a.shard ?? 0) - (b.shard ?? 0) || a.queuedAt - b.queuedAt),
    }));
  }

  /** A task's output from before this window's dispatcher started (its journal). */
  prependOutput(task: string, text: string): void {
    let out = this.outputs.get(task);
    if (!out) this.outputs.set(task, (out = new TaskOutput()));
    out.prepend(text);
    // Views re-read the whole text on any output event; an empty one adds nothing.
    if (text) this.onOutput.fire({ task, stream: 'stdout', text: '' });
  }

  /**
   * The dispatcher process went away and is being restarted with its journal:
   * its agents went with it, its tasks will be taken back.
   */
  dispatcherAway(): void {
    // Their output is read back from the journal: what came before it, then
    // what the new dispatcher relays (from the journal's last chunk on, so a
    // line relayed twice across the crash shows once).
    for (const task of this.tasks.values()) {
      if (isFinished(task) || !this.outputs.has(task.id)) continue;
      const out = new TaskOutput();
      out.fresh = true;
      this.outputs.set(task.id, out);
    }
    this.agents.clear();
    this.onAgents.fire(undefined);
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
    this.forgetUnusedGroups();
  }

  private forgetUnusedGroups(): void {
    const groups = new Set([...this.tasks.values()].map((t) => t.group));
    for (const group of this.specs.keys()) if (!groups.has(group)) this.specs.delete(group);
    for (const group of this.labels.keys()) if (!groups.has(group)) this.labels.delete(group);
  }
}
