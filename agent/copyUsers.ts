/**
 * Who is using each workspace copy right now: tasks (and their setup) run
 * in it, and a sync lays it out. A layout that would change a copy waits
 * until no task of that workspace runs, and a task waits for a layout in
 * progress, so a copy is never rearranged underneath a running task.
 */
export class CopyUsers {
  private readonly running = new Map<string, number>();
  private readonly idleWaiters = new Map<string, Array<() => void>>();
  private readonly layouts = new Map<string, Promise<unknown>>();
  /** Moves whenever a task starts or ends in a copy: what a check of its files is valid for. */
  private readonly moves = new Map<string, number>();

  /**
   * A count that moves whenever a task starts or ends in the copy: while it
   * stands still and no task runs, nothing of Octask's changed the copy.
   */
  changes(workspace: string): number {
    return this.moves.get(workspace) ?? 0;
  }

  /** Whether a layout of the copy is in progress. */
  layingOut(workspace: string): boolean {
    return this.layouts.has(workspace);
  }

  private moved(workspace: string): void {
    this.moves.set(workspace, this.changes(workspace) + 1);
  }

  /** Tasks running in the copy of `workspace`. */
  tasksIn(workspace: string): number {
    return this.running.get(workspace) ?? 0;
  }

  /**
   * A task starts using the copy, once any layout in progress is done;
   * resolves with the function that ends its use (safe to call twice).
   */
  async enter(workspace: string): Promise<() => void> {
    while (this.layouts.has(workspace)) await this.layouts.get(workspace)?.catch(() => undefined);
    this.running.set(workspace, this.tasksIn(workspace) + 1);
    this.moved(workspace);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.moved(workspace);
      const n = this.tasksIn(workspace) - 1;
      if (n > 0) {
        this.running.set(workspace, n);
        return;
      }
      this.running.delete(workspace);
      const waiters = this.idleWaiters.get(workspace) ?? [];
      this.idleWaiters.delete(workspace);
      for (const resolve of waiters) resolve();
    };
  }

  /**
   * Runs `layOut` once no task runs in the copy (and no other layout of it
   * is in progress); tasks arriving meanwhile wait for it. `waitedMs` says
   * how long it waited for running tasks.
   */
  async layOut<T>(
    workspace: string,
    layOut: () => Promise<T>,
  ): Promise<{ result: T; waitedMs: number }> {
    const began = performance.now();
    for (;;) {
      const other = this.layouts.get(workspace);
      if (other) await other.catch(() => undefined);
      else if (this.tasksIn(workspace) > 0) await this.idle(workspace);
      else break;
    }
    const waitedMs = Math.round(performance.now() - began);
    const running = layOut();
    this.layouts.set(workspace, running);
    try {
      return { result: await running, waitedMs };
    } finally {
      this.layouts.delete(workspace);
    }
  }

  private idle(workspace: string): Promise<void> {
    return new Promise((resolve) => {
      const list = this.idleWaiters.get(workspace) ?? [];
      list.push(resolve);
      this.idleWaiters.set(workspace, list);
    });
  }
}
