/**
 * Task placement, as a plain state machine: fed agents, tasks and freed
 * slots; asked where queued tasks go now. No timers, no sockets: the
 * dispatcher calls `place()` after every event that could change the
 * answer, so a task is placed the moment a slot frees or it arrives.
 */

/** Where a queued task may go. `agentId` pins it to one agent (used by target `all`). */
export type Placement =
  { kind: 'any' } | { kind: 'name'; name: string } | { kind: 'agentId'; id: string };

export interface SlotAgent {
  id: string;
  name: string;
  slots: number;
}

interface AgentState extends SlotAgent {
  used: number;
  online: boolean;
}

interface Queued {
  task: string;
  where: Placement;
}

export interface Assignment {
  task: string;
  agent: string;
}

export class Scheduler {
  private readonly agents = new Map<string, AgentState>();
  private queue: Queued[] = [];

  /** Adds an agent, or brings one back online with new slot figures. */
  agentOnline(agent: SlotAgent, used = 0): void {
    this.agents.set(agent.id, { ...agent, used, online: true });
  }

  /** The agent takes no more tasks; its running tasks are the caller's to settle. */
  agentOffline(id: string): void {
    const a = this.agents.get(id);
    if (a) {
      a.online = false;
      a.used = 0;
    }
  }

  isOnline(id: string): boolean {
    return this.agents.get(id)?.online ?? false;
  }

  /** Queues a task; `front` puts it ahead of the others (a retry keeps its place in line). */
  enqueue(task: string, where: Placement, front = false): void {
    if (front) this.queue.unshift({ task, where });
    else this.queue.push({ task, where });
  }

  /** Drops a queued task; false if it was not queued. */
  dequeue(task: string): boolean {
    const before = this.queue.length;
    this.queue = this.queue.filter((q) => q.task !== task);
    return this.queue.length !== before;
  }

  /** A task on this agent ended: its slot is free. */
  release(agentId: string): void {
    const a = this.agents.get(agentId);
    if (a && a.used > 0) a.used--;
  }

  get queued(): readonly string[] {
    return this.queue.map((q) => q.task);
  }

  /** Tasks queued for agents that are not online, so could not be placed now. */
  unplaceable(): string[] {
    return this.queue.filter((q) => this.eligible(q.where).next().done).map((q) => q.task);
  }

  /**
   * Places queued tasks in FIFO order on free slots. A task that cannot go
   * anywhere yet does not hold back those behind it that can. Among the
   * eligible agents the least loaded wins.
   */
  place(): Assignment[] {
    const out: Assignment[] = [];
    if (this.queue.length === 0 || !this.anyFree()) return out;
    const remaining: Queued[] = [];
    for (let i = 0; i < this.queue.length; i++) {
      const q = this.queue[i] as Queued;
      const agent = this.leastLoaded(q.where);
      if (agent) {
        agent.used++;
        out.push({ task: q.task, agent: agent.id });
        if (!this.anyFree()) {
          for (let j = i + 1; j < this.queue.length; j++) remaining.push(this.queue[j] as Queued);
          break;
        }
      } else {
        remaining.push(q);
      }
    }
    if (out.length > 0) this.queue = remaining;
    return out;
  }

  private anyFree(): boolean {
    for (const a of this.agents.values()) if (a.online && a.used < a.slots) return true;
    return false;
  }

  private *eligible(where: Placement): Generator<AgentState> {
    for (const a of this.agents.values()) {
      if (!a.online) continue;
      if (where.kind === 'agentId' && a.id !== where.id) continue;
      if (where.kind === 'name' && a.name !== where.name) continue;
      yield a;
    }
  }

  private leastLoaded(where: Placement): AgentState | undefined {
    let best: AgentState | undefined;
    for (const a of this.eligible(where)) {
      if (a.used >= a.slots) continue;
      if (!best || a.used / a.slots < best.used / best.slots) best = a;
    }
    return best;
  }
}
