/**
 * Task placement, as a plain state machine: fed what agents report of their
 * slots, the tasks to place and the tasks that let go of an agent; asked
 * where queued tasks go now. No timers, no sockets: the dispatcher calls
 * `place()` after every event that could change the answer.
 *
 * The agents own their slots (several dispatchers share them), so free room
 * is what an agent last reported, less what this dispatcher sent since that
 * the report does not show yet. A task goes first to an agent with a free
 * slot: the tasks of one submission to different agents first (unless it
 * asks to pack), then the least loaded, then one that already has its
 * workspace. When no agent has a free slot, a task still goes to the
 * least loaded one, to wait in that agent's queue (which serves every
 * dispatcher in arrival order), but never more than `maxJobs` of this
 * dispatcher's tasks wait at one agent: the rest wait here, so one
 * dispatcher cannot flood an agent's queue ahead of the others.
 */

/** Where a queued task may go. `agentId` pins it to one agent (used by target `all`). */
export type Placement =
  { kind: 'any' } | { kind: 'name'; name: string } | { kind: 'agentId'; id: string };

/** An agent's slots, as it last reported them. */
export interface AgentSlots {
  id: string;
  name: string;
  maxJobs: number;
  /** Running and waiting there, from every dispatcher. */
  running: number;
  queued: number;
  /** Of those, this dispatcher's. */
  yoursRunning: number;
  yoursQueued: number;
  resting: boolean;
}

interface AgentState extends AgentSlots {
  online: boolean;
}

interface Queued {
  task: string;
  where: Placement;
  group: string;
  pack: boolean;
}

export interface Assignment {
  task: string;
  agent: string;
}

export class Scheduler {
  private readonly agents = new Map<string, AgentState>();
  private queue: Queued[] = [];
  /** This dispatcher's tasks that hold room on each agent: agent → task → group. */
  private readonly held = new Map<string, Map<string, string>>();

  /**
   * @param hasWorkspace whether the agent already has the task's workspace
   *   (a tie-break only).
   */
  constructor(
    private readonly hasWorkspace: (task: string, agent: string) => boolean = () => false,
  ) {}

  /** An agent is online with these figures (its hello, or a `load` report). */
  agentUpdate(slots: AgentSlots): void {
    this.agents.set(slots.id, { ...slots, online: true });
  }

  /** The agent said it rests (it refused a run): no more for it until its next report. */
  markResting(id: string): void {
    const a = this.agents.get(id);
    if (a) a.resting = true;
  }

  /** The agent takes no more tasks (link down); what it held is the caller's to settle. */
  agentOffline(id: string): void {
    const a = this.agents.get(id);
    if (a) a.online = false;
    this.held.delete(id);
  }

  isOnline(id: string): boolean {
    return this.agents.get(id)?.online ?? false;
  }

  /** Whether an agent other than `except` could take a task placed as `where` now or soon. */
  hasOtherEligible(where: Placement, except: string): boolean {
    for (const a of this.eligible(where)) if (a.id !== except) return true;
    return false;
  }

  /** Queues a task; `front` puts it ahead of the others (a retry keeps its place in line). */
  enqueue(
    task: string,
    where: Placement,
    group: string,
    options: { front?: boolean; pack?: boolean } = {},
  ): void {
    const q = { task, where, group, pack: options.pack ?? false };
    if (options.front) this.queue.unshift(q);
    else this.queue.push(q);
  }

  /** Drops a queued task; false if it was not queued. */
  dequeue(task: string): boolean {
    const before = this.queue.length;
    this.queue = this.queue.filter((q) => q.task !== task);
    return this.queue.length !== before;
  }

  /** The task holds room on this agent without being placed now (reattached after a link drop). */
  agentHolds(agent: string, task: string, group: string): void {
    this.heldOn(agent).set(task, group);
  }

  /** The task no longer holds room on this agent (it ended, or was taken back). */
  release(agent: string, task: string): void {
    this.held.get(agent)?.delete(task);
  }

  get queued(): readonly string[] {
    return this.queue.map((q) => q.task);
  }

  /** The room this dispatcher sees on an agent now, as it would place. */
  freeSlots(id: string): number {
    const a = this.agents.get(id);
    return a ? this.free(a) : 0;
  }

  /**
   * Places queued tasks in FIFO order. A task that cannot go anywhere yet
   * does not hold back those behind it that can.
   */
  place(): Assignment[] {
    const out: Assignment[] = [];
    if (this.queue.length === 0 || !this.anyRoom()) return out;
    const remaining: Queued[] = [];
    for (const q of this.queue) {
      const agent = this.choose(q);
      if (!agent) {
        remaining.push(q);
        continue;
      }
      this.heldOn(agent.id).set(q.task, q.group);
      out.push({ task: q.task, agent: agent.id });
    }
    this.queue = remaining;
    return out;
  }

  /** Whether some agent could take some task now (a free slot, or room to wait there). */
  private anyRoom(): boolean {
    for (const a of this.agents.values()) {
      if (!a.online || a.resting || a.maxJobs === 0) continue;
      if (this.free(a) > 0 || this.canWaitAt(a)) return true;
    }
    return false;
  }

  private choose(q: Queued): AgentState | undefined {
    let best: AgentState | undefined;
    let bestKey: number[] = [];
    let waitBest: AgentState | undefined;
    let waitKey: number[] = [];
    for (const a of this.eligible(q.where)) {
      const mine = this.heldOn(a.id);
      let sameGroup = 0;
      for (const g of mine.values()) if (g === q.group) sameGroup++;
      const load = this.occupied(a) / Math.max(1, a.maxJobs);
      const affinity = this.hasWorkspace(q.task, a.id) ? 0 : 1;
      if (this.free(a) > 0) {
        // Lower is better, compared in order.
        const key = [q.pack ? -sameGroup : sameGroup, load, affinity];
        if (!best || less(key, bestKey)) {
          best = a;
          bestKey = key;
        }
      } else if (this.canWaitAt(a)) {
        const key = [load, sameGroup, affinity];
        if (!waitBest || less(key, waitKey)) {
          waitBest = a;
          waitKey = key;
        }
      }
    }
    return best ?? waitBest;
  }

  /** Whether one more of this dispatcher's tasks may wait in the agent's queue (at most maxJobs do). */
  private canWaitAt(a: AgentState): boolean {
    const mine = this.heldOn(a.id).size;
    return mine - a.yoursRunning < a.maxJobs && mine < 2 * a.maxJobs;
  }

  /** Running plus waiting at the agent, counting what this dispatcher sent that its report does not show yet. */
  private occupied(a: AgentState): number {
    const unreported = Math.max(0, this.heldOn(a.id).size - (a.yoursRunning + a.yoursQueued));
    return a.running + a.queued + unreported;
  }

  private free(a: AgentState): number {
    return Math.max(0, a.maxJobs - this.occupied(a));
  }

  private heldOn(id: string): Map<string, string> {
    let m = this.held.get(id);
    if (!m) {
      m = new Map();
      this.held.set(id, m);
    }
    return m;
  }

  private *eligible(where: Placement): Generator<AgentState> {
    for (const a of this.agents.values()) {
      if (!a.online || a.resting || a.maxJobs === 0) continue;
      if (where.kind === 'agentId' && a.id !== where.id) continue;
      if (where.kind === 'name' && a.name !== where.name) continue;
      yield a;
    }
  }
}

function less(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x < y;
  }
  return false;
}
