import * as vscode from 'vscode';
import { EXIT, runExitCode } from '../../shared/exitCode';
import type { OutputEvent, SyncInfo, TaskInfo, TaskSpec } from '../../shared/rpc';
import { syncSummary } from '../../shared/syncSummary';
import type { ClusterModel } from './clusterModel';
import { isFinished } from './clusterModel';
import type { DispatcherClient } from './dispatcherClient';
import { formatBytes, formatDuration, taskPlace } from './format';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PathRewriter } from '../../shared/pathRewrite';
import { taskNotice } from '../../shared/taskNotice';
import type { Blocked } from './blocked';
import { blockedMessage, showBlocked } from './blocked';
import { CwdPathMapper } from './problemPaths';
import { closeDelay } from './terminalTiming';

const DIM = '\x1b[2m';
const RED = '\x1b[31m';
const YELLOW = '\x1b[33m';
const RESET = '\x1b[0m';
/** How long a task started before the dispatcher is up waits for it. */
const DISPATCHER_WAIT_MS = 30_000;

/** What a terminal needs: where to submit, where tasks report, the local folder for paths. */
export interface TaskTerminalDeps {
  client: DispatcherClient;
  model: ClusterModel;
  /** Why nothing can run now (no key, untrusted), if so: said at once rather than waited out. */
  blockedBy(): Blocked | undefined;
}

/**
 * A task's terminal: submits the spec, streams the remote output live with
 * agent paths mapped to local ones, cancels on Ctrl+C or when the terminal is
 * closed, and closes with the remote exit code (the first failing shard's for
 * several), so `dependsOn` chains and problem matchers behave as for a local task.
 */
export class RemoteTaskTerminal implements vscode.Pseudoterminal {
  private readonly writeEmitter = new vscode.EventEmitter<string>();
  private readonly closeEmitter = new vscode.EventEmitter<number>();
  readonly onDidWrite = this.writeEmitter.event;
  readonly onDidClose = this.closeEmitter.event;

  private ids: string[] = [];
  private readonly rewriters = new Map<
    string,
    { root: string; rewriter: PathRewriter; cwd: CwdPathMapper | undefined }
  >();
  /** Partial last lines per task and stream, when several tasks share the terminal. */
  private readonly partial = new Map<string, string>();
  private subs: Array<{ dispose(): void }> = [];
  private finished = false;
  private readonly syncedTo = new Set<string>();
  private openedAt = 0;
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly spec: TaskSpec | { error: string },
    private readonly deps: TaskTerminalDeps,
    /** The VS Code task's label, for the Tasks view and output titles. */
    private readonly label?: string,
    /** Hears the submitted tasks once, or undefined when nothing was submitted. */
    private readonly submitted?: (tasks: TaskInfo[] | undefined) => void,
  ) {}

  open(): void {
    this.openedAt = Date.now();
    void this.run();
  }

  handleInput(data: string): void {
    if (data.includes('\x03') && !this.finished) {
      this.write(`${DIM}^C — cancelling${RESET}\n`);
      this.cancelAll();
    }
  }

  /** The user closed the terminal or terminated the task. */
  close(): void {
    if (!this.finished) this.cancelAll();
    this.finish(null);
  }

  private async run(): Promise<void> {
    if ('error' in this.spec) {
      this.write(`${RED}octask: ${this.spec.error}${RESET}\n`);
      return this.finish(EXIT.usage);
    }
    const spec = this.spec;
    const { client } = this.deps;
    const where = describeTarget(spec);
    // The label, not the command line: a command that prints a problem (`printf 'a.ts(1,2): error…'`)
    // would otherwise match the task's problem matcher on this very line.
    this.write(`${DIM}octask: ${this.label ?? spec.command}  →  ${where}${RESET}\n`);
    const blocked = this.deps.blockedBy();
    if (blocked) {
      this.write(`${RED}octask: ${blockedMessage(blocked)}${RESET}\n`);
      void showBlocked(blocked);
      return this.finish(EXIT.octaskFailure);
    }
    if (!client.ready()) {
      this.write(`${DIM}waiting for the dispatcher to start…${RESET}\n`);
      if (!(await client.waitUntilReady(DISPATCHER_WAIT_MS))) {
        this.write(
          `${RED}octask: the dispatcher is not running (see "Octask: Show Log")${RESET}\n`,
        );
        return this.finish(EXIT.octaskFailure);
      }
    }
    if (spec.sync) this.write(`${DIM}syncing ${spec.sync.root} to the agent…${RESET}\n`);
    let tasks: TaskInfo[];
    try {
      tasks = (await client.submit(spec, this.label)).tasks;
      this.submitted?.(tasks);
    } catch (err) {
      this.write(`${RED}octask: ${(err as Error).message}${RESET}\n`);
      return this.finish(EXIT.octaskFailure);
    }
    if (this.finished) {
      // Closed while submitting: the tasks must not run on unwatched.
      this.ids = tasks.map((t) => t.id);
      this.cancelAll();
      return;
    }
    this.ids = tasks.map((t) => t.id);
    for (const t of tasks) this.lastSeen.set(t.id, { ...(this.deps.model.tasks.get(t.id) ?? t) });
    const mine = new Set(this.ids);
    // Subscribe and replay in one synchronous step, so no chunk is missed or doubled.
    this.subs.push(
      this.deps.model.onOutput.on((e) => {
        if (mine.has(e.task)) this.output(e);
      }),
      this.deps.model.onTask.on((t) => {
        if (!mine.has(t.id)) return;
        // Said where the user is looking: waiting for a slot, reconnecting, run again.
        const notice = taskNotice(this.lastSeen.get(t.id), t);
        this.lastSeen.set(t.id, { ...t });
        if (notice)
          this.write(
            `${DIM}${this.ids.length > 1 ? `[${t.agent ?? t.id}#${t.shard ?? 0}] ` : ''}${notice}${RESET}\n`,
          );
        this.taskChanged();
      }),
      this.deps.model.onSync.on((s) => this.synced(s)),
      this.deps.model.onArtifacts.on((a) => {
        if (!mine.has(a.task)) return;
        if (a.files > 0)
          this.write(
            `${DIM}${a.agent}: brought back ${a.files} artifact file${a.files === 1 ? '' : 's'} (${formatBytes(a.bytes)})${RESET}\n`,
          );
        for (const glob of a.unmatched)
          this.write(`${YELLOW}warning: ${a.agent}: artifacts ${glob} matched no file${RESET}\n`);
        for (const s of a.skipped)
          this.write(
            `${YELLOW}warning: artifact ${s.path} not brought back: ${s.reason}${RESET}\n`,
          );
      }),
    );
    for (const id of this.ids) {
      const text = this.deps.model.outputs.get(id)?.text();
      if (text) this.output({ task: id, stream: 'stdout', text });
    }
    const online = [...this.deps.model.agents.values()].some(
      (a) => a.status === 'online' || a.status === 'busy',
    );
    if (!online && tasks.some((t) => t.status === 'pending'))
      this.write(`${DIM}queued: no agent is online yet (see the Workers view)${RESET}\n`);
    this.taskChanged();
  }

  /** One line per agent this terminal's tasks were synced to. */
  private synced(s: SyncInfo): void {
    const root = 'sync' in this.spec ? this.spec.sync?.root : undefined;
    if (s.root !== root || this.syncedTo.has(s.agent)) return;
    const mineThere = this.ids.some((id) => this.deps.model.tasks.get(id)?.agent === s.agent);
    if (!mineThere) return;
    this.syncedTo.add(s.agent);
    this.write(
      s.error
        ? `${RED}sync to ${s.agent} failed: ${s.error.message}${RESET}\n`
        : `${DIM}synced to ${s.agent}: ${syncSummary(s)} (${s.files} files) in ${formatDuration(s.ms)}${RESET}\n`,
    );
  }

  private output(e: OutputEvent): void {
    const task = this.deps.model.tasks.get(e.task);
    let text = this.rewrite(e.task, task, e.text);
    if (this.ids.length > 1 && task) text = this.prefixLines(task, e.stream, text);
    if (text) this.write(text);
  }

  private rewrite(id: string, task: TaskInfo | undefined, text: string): string {
    const localRoot = 'sync' in this.spec ? this.spec.sync?.root : undefined;
    const agentRoot = task?.agentRoot;
    if (!localRoot || !agentRoot) return text;
    let entry = this.rewriters.get(id);
    if (!entry || entry.root !== agentRoot) {
      entry = {
        root: agentRoot,
        rewriter: new PathRewriter(agentRoot, localRoot),
        cwd: cwdMapper(localRoot, 'command' in this.spec ? this.spec.cwd : undefined),
      };
      this.rewriters.set(id, entry);
    }
    const mapped = entry.rewriter.write(text);
    return entry.cwd ? entry.cwd.write(mapped) : mapped;
  }

  /** What a task's rewriters still hold, once it ended. */
  private flushRewriters(id: string): string {
    const entry = this.rewriters.get(id);
    if (!entry) return '';
    const rest = entry.rewriter.flush();
    return entry.cwd ? entry.cwd.write(rest) + entry.cwd.flush() : rest;
  }

  /** With several tasks in one terminal, whole lines only, each tagged `[agent#shard]`. */
  private prefixLines(task: TaskInfo, stream: string, text: string, final = false): string {
    const key = `${task.id}\0${stream}`;
    const all = (this.partial.get(key) ?? '') + text;
    const end = final ? all.length : all.lastIndexOf('\n') + 1;
    this.partial.set(key, all.slice(end));
    if (end === 0) return '';
    const tag = `${DIM}[${taskPlace(task)}]${RESET} `;
    const lines = all.slice(0, end).replace(/\n$/, '').split('\n');
    return lines.map((l) => tag + l).join('\n') + '\n';
  }

  /** Each task as this terminal last saw it, to tell what changed. */
  private readonly lastSeen = new Map<string, TaskInfo>();

  private taskChanged(): void {
    if (this.finished) return;
    const tasks = this.ids.map((id) => this.deps.model.tasks.get(id));
    if (tasks.some((t) => t === undefined || !isFinished(t))) return;
    const done = tasks as TaskInfo[];
    for (const t of done) {
      const rest = this.flushRewriters(t.id);
      if (this.ids.length > 1) {
        this.write(this.prefixLines(t, 'stdout', rest, true));
        this.write(this.prefixLines(t, 'stderr', '', true));
      } else if (rest) this.write(rest);
    }
    for (const t of done) this.write(summary(t, this.ids.length > 1));
    this.finish(runExitCode(done));
  }

  private cancelAll(): void {
    const client = this.deps.client.ready() ? this.deps.client : undefined;
    for (const id of this.ids) {
      const t = this.deps.model.tasks.get(id);
      if (t && isFinished(t)) continue;
      client?.cancel(id).catch(() => undefined);
    }
  }

  private finish(code: number | null): void {
    if (this.finished && code !== null) return;
    if (this.ids.length === 0) this.submitted?.(undefined);
    this.finished = true;
    for (const s of this.subs) s.dispose();
    this.subs = [];
    if (code === null) {
      if (this.closeTimer) clearTimeout(this.closeTimer);
      return;
    }
    const wait = closeDelay(this.openedAt, Date.now());
    if (wait === 0) this.closeEmitter.fire(code);
    else this.closeTimer = setTimeout(() => this.closeEmitter.fire(code), wait);
  }

  private write(text: string): void {
    // A pseudoterminal is a raw terminal: a bare \n moves down without returning.
    this.writeEmitter.fire(text.replace(/\r?\n/g, '\r\n'));
  }
}

/**
 * Paths printed relative to a task's cwd become workspace-relative, so
 * problem matchers find the files; only for a cwd below the workspace root.
 */
function cwdMapper(localRoot: string, cwd: string | undefined): CwdPathMapper | undefined {
  if (!cwd) return undefined;
  return new CwdPathMapper(cwd, (rel) => existsSync(join(localRoot, rel)));
}

function describeTarget(spec: TaskSpec): string {
  const target = spec.target ?? { kind: 'any' };
  const base =
    target.kind === 'any' ? 'any agent' : target.kind === 'all' ? 'all agents' : target.name;
  return spec.shards && spec.shards > 1 ? `${spec.shards} shards on ${base}` : base;
}

function summary(task: TaskInfo, tagged: boolean): string {
  const ok = task.status === 'completed';
  const how =
    task.status === 'failed' && task.exitCode !== null
      ? `failed with exit ${task.exitCode}`
      : task.status.replace('_', ' ');
  const where = task.agent ? ` on ${tagged ? taskPlace(task) : task.agent}` : '';
  const time = task.durationMs !== null ? ` in ${formatDuration(task.durationMs)}` : '';
  const why = task.error ? ` — ${task.error.message}` : '';
  const retried = task.attempts > 1 ? ` after ${task.attempts} attempts` : '';
  return `${ok ? DIM : RED}── ${how}${where}${time}${retried}${why}${RESET}\n`;
}
