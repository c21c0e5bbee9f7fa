/**
 * The agent's slots: at most `maxJobs` tasks run at once, whoever sent
 * them; the rest wait in one queue, in arrival order across dispatchers.
 * A plain class fed events (no timers, no I/O), so the rule is tested alone.
 */
export class SlotQueue<T> {
  private readonly waiting: T[] = [];
  private runningCount = 0;
  private held = false;

  constructor(readonly maxJobs: number) {}

  get running(): number {
    return this.runningCount;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** The tasks waiting, first in line first. */
  get queue(): readonly T[] {
    return this.waiting;
  }

  /**
   * Takes a task. True: it may start now (a slot is taken for it). False: it
   * waits; `ahead(item)` says how many go before it.
   */
  offer(item: T): boolean {
    if (!this.held && this.runningCount < this.maxJobs && this.waiting.length === 0) {
      this.runningCount++;
      return true;
    }
    this.waiting.push(item);
    return false;
  }

  ahead(item: T): number {
    return this.waiting.indexOf(item);
  }

  /** A running task ended. Returns the tasks that start now, slots taken for them. */
  release(): T[] {
    if (this.runningCount > 0) this.runningCount--;
    return this.fill();
  }

  /** Drops a waiting task (cancelled before it started); false if it was not waiting. */
  withdraw(item: T): boolean {
    const at = this.waiting.indexOf(item);
    if (at === -1) return false;
    this.waiting.splice(at, 1);
    return true;
  }

  /** Starts nothing new while held (resting on battery); running tasks go on. */
  hold(held: boolean): T[] {
    this.held = held;
    return held ? [] : this.fill();
  }

  private fill(): T[] {
    const starting: T[] = [];
    while (!this.held && this.runningCount < this.maxJobs && this.waiting.length > 0) {
      this.runningCount++;
      starting.push(this.waiting.shift() as T);
    }
    return starting;
  }
}
