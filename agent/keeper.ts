import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Logger } from '../shared/logger';
import type { KeeperConfig } from './keeperScript';
import { KEEPER_SOURCE } from './keeperScript';
import { isMarker, TASK_MARKER_VAR } from './taskMarker';

export interface KeeperOptions {
  /** Time between TERM and KILL once the agent is gone (default 1.5 s). */
  graceMs?: number;
}

interface Tracked {
  pgid: number;
  marker: string;
}

/** A keeper that lived this long is healthy again: its next death restarts it at once. */
const HEALTHY_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;

/**
 * The agent's side of its keeper: a small process (keeperScript.ts) holding a
 * pipe from the agent, which ends the tasks it was told about when that pipe
 * closes, that is when the agent dies however it dies (SIGKILL, a crash, the
 * OOM killer), so no task outlives its agent by more than the grace period.
 * If the keeper itself dies, it is started again and told the tracked set.
 * On Windows (no process groups) it is inert.
 */
export class Keeper {
  private child: ChildProcess | undefined;
  private readonly tracked = new Map<string, Tracked>();
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private quickDeaths = 0;

  private constructor(
    private readonly logger: Logger,
    private readonly config: KeeperConfig,
  ) {}

  static start(logger: Logger, options: KeeperOptions = {}): Keeper {
    const keeper = new Keeper(logger, {
      markerVar: TASK_MARKER_VAR,
      graceMs: options.graceMs ?? 1500,
    });
    if (process.platform !== 'win32') keeper.launch();
    return keeper;
  }

  /** The keeper process's pid while one runs. */
  get pid(): number | undefined {
    const child = this.child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  /** From now on, the keeper ends this task's process group and marked processes if the agent dies. */
  track(task: string, pgid: number, marker: string): void {
    if (!Number.isInteger(pgid) || pgid <= 1) throw new Error(`not a process group: ${pgid}`);
    if (!isMarker(marker)) throw new Error(`not a task marker: ${JSON.stringify(marker)}`);
    this.tracked.set(task, { pgid, marker });
    this.send({ op: 'track', task, pgid, marker });
  }

  /** The task ended (or was ended by the agent): the keeper forgets it. */
  untrack(task: string): void {
    if (this.tracked.delete(task)) this.send({ op: 'untrack', task });
  }

  /**
   * The agent is exiting: closes the pipe, so the keeper ends whatever is
   * still tracked (nothing, after a clean drain) and exits. Resolves once it
   * has exited.
   */
  stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      // Unref'd so far so as not to hold the agent open; now the agent waits for it.
      child.ref();
      child.stdin?.end();
    });
  }

  private launch(): void {
    this.startedAt = Date.now();
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, ['-e', KEEPER_SOURCE, JSON.stringify(this.config)], {
        stdio: ['pipe', 'ignore', 'ignore'],
        // Its own session: a Ctrl+C to the terminal's process group does not reach it.
        detached: true,
        // Not to pin the folder the agent was started in.
        cwd: '/',
      });
    } catch (err) {
      this.died(undefined, `cannot start: ${(err as Error).message}`);
      return;
    }
    this.child = child;
    // The keeper must never keep the agent running, nor crash it with EPIPE.
    child.unref();
    (child.stdin as Socket | null)?.unref();
    child.stdin?.on('error', () => {});
    child.once('error', (err) => {
      if (child.pid === undefined) this.died(child, `cannot start: ${err.message}`);
    });
    child.once('exit', (code, signal) =>
      this.died(child, `exited (code ${code}, signal ${signal})`),
    );
    if (child.pid === undefined) return;
    for (const [task, t] of this.tracked) this.send({ op: 'track', task, ...t });
    this.logger.debug('task keeper started', { pid: child.pid });
  }

  /** `child` is the keeper that died (undefined: none started); a late second report of one death is ignored. */
  private died(child: ChildProcess | undefined, reason: string): void {
    if (child !== this.child) return;
    this.child = undefined;
    if (this.stopping) return;
    this.quickDeaths = Date.now() - this.startedAt < HEALTHY_MS ? this.quickDeaths + 1 : 0;
    const delay = Math.min(
      MAX_RESTART_DELAY_MS,
      this.quickDeaths <= 1 ? 0 : 500 * 2 ** this.quickDeaths,
    );
    this.logger.warn('task keeper died; starting it again', {
      reason,
      tracked: this.tracked.size,
      delayMs: delay,
    });
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => this.launch(), delay);
    this.restartTimer.unref();
  }

  private send(message: Record<string, unknown>): void {
    const stdin = this.child?.stdin;
    // While no keeper runs, the tracked set is sent again when the next one starts.
    if (stdin?.writable) stdin.write(JSON.stringify(message) + '\n');
  }
}
