import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { ExitOutcome, OutputStream } from '../shared/protocol';
import { shellInvocation } from './shell';

export interface TaskRequest {
  command: string;
  /** The whole environment of the process (not merged with the agent's). */
  env: NodeJS.ProcessEnv;
  cwd: string;
  shell: string;
  /** 0: no timeout. */
  timeoutMs: number;
  /** Time between TERM and KILL when the task is ended. */
  killGraceMs: number;
  /**
   * What ends the processes that leave the task's group (an environment
   * marker, the keeper, a cgroup): see taskContainment.ts.
   */
  containment?: Containment;
}

/** The part of TaskContainment the runner drives. */
export interface Containment {
  readonly env: Record<string, string>;
  started(pid: number): void;
  signal(signal: NodeJS.Signals): number;
  release(): Promise<void>;
}

/** After the leader exited and everything it started was killed, how long its pipes may stay open. */
const PIPE_DRAIN_MS = 1000;

export interface TaskResult {
  outcome: ExitOutcome;
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
}

/** Where a running task reports to; calls come in this order: start, output*, end. */
export interface TaskSink {
  started(pid: number): void;
  output(stream: OutputStream, data: Buffer): void;
  /** The process could not be started; no other call follows. */
  spawnFailed(message: string): void;
  ended(result: TaskResult): void;
}

/**
 * One command in its own process group. Ending it (timeout, cancel) signals
 * the whole group, TERM first and KILL after a grace period, and whatever
 * the command left behind in its group is killed once it exits, so no task
 * leaves processes running.
 */
export class TaskProcess {
  private child: ChildProcess | undefined;
  private readonly startedAt = performance.now();
  private endReason: 'timed_out' | 'cancelled' | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private exited = false;
  private finished = false;

  constructor(
    private readonly request: TaskRequest,
    private readonly sink: TaskSink,
  ) {}

  start(): void {
    if (this.endReason) {
      // Cancelled while its folder was being made: it never runs.
      this.finished = true;
      this.sink.ended({ outcome: this.endReason, exitCode: null, signal: null, durationMs: 0 });
      return;
    }
    const { file, args } = shellInvocation(this.request.shell, this.request.command);
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        cwd: this.request.cwd,
        env: { ...this.request.env, ...this.request.containment?.env },
        stdio: ['ignore', 'pipe', 'pipe'],
        // A new session makes the child a process-group leader, so the group
        // can be signalled as a whole.
        detached: process.platform !== 'win32',
        windowsHide: true,
      });
    } catch (err) {
      this.fail(`cannot start ${file}: ${(err as Error).message}`);
      return;
    }
    this.child = child;
    child.once('error', (err) => {
      // Only spawn errors reach here before 'spawn'; later ones (kill on a
      // dead process) are ignored because the exit path already ran.
      if (child.pid === undefined) this.fail(`cannot start ${file}: ${err.message}`);
    });
    if (child.pid === undefined) return;
    this.request.containment?.started(child.pid);
    this.sink.started(child.pid);
    this.pipe(child.stdout, 'stdout');
    this.pipe(child.stderr, 'stderr');
    child.once('exit', () => {
      this.exited = true;
      // The leader is gone; anything it left in its group goes too, and (in
      // release) whatever left the group carrying the task's marker.
      this.signalGroup('SIGKILL', false);
      void (this.request.containment?.release() ?? Promise.resolve()).then(() => {
        // Something that escaped every net may still hold the pipes open: the
        // task is over all the same, and must not outlast its timeout for it.
        const drain = setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          this.finish(child.exitCode, child.signalCode);
        }, PIPE_DRAIN_MS);
        drain.unref();
        child.once('close', () => clearTimeout(drain));
      });
    });
    child.once('close', (code, signal) => this.finish(code, signal));
    if (this.request.timeoutMs > 0) {
      this.timeoutTimer = setTimeout(() => this.end('timed_out'), this.request.timeoutMs);
    }
  }

  /** Ends the task as cancelled (TERM, then KILL after the grace period). */
  cancel(): void {
    this.end('cancelled');
  }

  /** Stops reading the task's output (the sink is behind); the pipe then fills and the task blocks. */
  pause(): void {
    this.child?.stdout?.pause();
    this.child?.stderr?.pause();
  }

  resume(): void {
    this.child?.stdout?.resume();
    this.child?.stderr?.resume();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private pipe(stream: Readable | null, name: OutputStream): void {
    stream?.on('data', (chunk: Buffer) => this.sink.output(name, chunk));
  }

  private end(reason: 'timed_out' | 'cancelled'): void {
    if (this.finished || this.endReason) return;
    this.endReason = reason;
    clearTimeout(this.timeoutTimer);
    if (!this.child) return; // not started yet: start() will report it
    this.signalGroup('SIGTERM');
    this.killTimer = setTimeout(() => this.signalGroup('SIGKILL'), this.request.killGraceMs);
  }

  /** Signals the task's process group, and with `marked` what left it carrying the marker. */
  private signalGroup(signal: NodeJS.Signals, marked = true): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      if (process.platform === 'win32') {
        if (!this.exited) this.child?.kill(signal);
      } else {
        process.kill(-pid, signal);
      }
    } catch {
      // ESRCH: the group is already empty.
    }
    if (marked) this.request.containment?.signal(signal);
  }

  private finish(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.killTimer);
    const outcome: ExitOutcome = this.endReason ?? (code === 0 ? 'completed' : 'failed');
    this.sink.ended({
      outcome,
      exitCode: code,
      signal,
      durationMs: Math.round(performance.now() - this.startedAt),
    });
  }

  private fail(message: string): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timeoutTimer);
    this.sink.spawnFailed(message);
  }
}
