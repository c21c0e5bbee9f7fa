import { mkdirSync, rmSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, isOctaskError } from '../shared/errors';
import type { ConnectionError, WsLike } from '../shared/frameConnection';
import type { Logger } from '../shared/logger';
import type {
  AgentLoad,
  AttachMessage,
  ExitOutcome,
  FetchMessage,
  HelloMessage,
  ManifestEntry,
  OutputStream,
  RunMessage,
} from '../shared/protocol';
import { CloseCode, PROTOCOL_VERSION } from '../shared/protocol';
import { OCTASK_VERSION } from '../shared/version';
import { AgentTask, taskKey } from './agentTask';
import type { AuditLog } from './audit';
import { sendBlobs } from './blobSender';
import { CopyUsers } from './copyUsers';
import type { DeviceLoad } from './deviceLoad';
import { readDeviceLoad, shouldRest } from './deviceLoad';
import { OutputSpool } from './outputSpool';
import type { CommandPolicy } from './policy';
import { checkCommand } from './policy';
import type { Keeper } from './keeper';
import { TaskProcess } from './runner';
import type { TaskCgroups } from './cgroup';
import { TaskContainment } from './taskContainment';
import type { TaskFrame } from './session';
import { Session } from './session';
import { SetupSteps } from './setupSteps';
import { SlotQueue } from './slotQueue';
import { EntryBudget, SyncReceiver } from './syncReceiver';
import type { TaskFolder } from './taskFolder';
import { scratchName, taskFolder } from './taskFolder';
import type { WorkspaceCopies } from './workspaceCopy';

export interface AgentConfig {
  id: string;
  name: string;
  maxJobs: number;
  tags: string[];
  shell: string;
  workdir: string;
  policy: CommandPolicy;
  killGraceMs: number;
  logger: Logger;
  audit: AuditLog;
  os: string;
  arch: string;
  cpus: number;
  copies: WorkspaceCopies;
  /** Longest grace a dispatcher may ask for (its tasks outlive its connection this long). */
  maxGraceMs: number;
  /** Below this battery level, discharging, the agent takes no new work (0: never). */
  batteryFloorPct: number;
  /** How often load and battery are read again. */
  loadPollMs: number;
  /** Ping interval of each connection (tests shorten it). */
  heartbeatMs?: number;
  /** Where sysfs is (tests lay out a fake one). */
  sysfsRoot?: string;
  /** Tasks a previous life of the agent left running, ended on this start: task id → owner. */
  orphans?: ReadonlyArray<{ task: string; owner: string }>;
  /** Ends the tasks if the agent process dies (absent in unit tests). */
  keeper?: Keeper;
  /** A delegated cgroup to put each task in, where the agent has one. */
  cgroups?: TaskCgroups;
}

/** Lifecycle: serving → draining (no new work) → cancelling (tasks ended) → stopped. */
export type AgentStage = 'serving' | 'draining' | 'cancelling' | 'stopped';

/** A dispatcher, by its stable id: its live connection, if any, and its grace timer. */
interface Owner {
  session: Session | undefined;
  graceMs: number;
  graceTimer: NodeJS.Timeout | undefined;
}

/** Grace for a dispatcher that asks for none (an older or a minimal one). */
const DEFAULT_GRACE_MS = 2 * 60_000;
/** Finished tasks kept per dispatcher for it to collect, beyond which the oldest go. */
const MAX_EXITED_PER_OWNER = 1000;

/**
 * The agent's core. It owns its slots: every task, from any dispatcher,
 * waits in one queue and runs only when one of `maxJobs` slots is free.
 * Tasks belong to their dispatcher (by its stable id), not to a connection:
 * they keep running and spool their output while it is away, for as long as
 * the grace it asked for. Every connected dispatcher hears each change of
 * the agent's counts and load.
 */
export class Agent {
  private readonly sessions = new Set<Session>();
  private readonly tasks = new Map<string, AgentTask>();
  private readonly owners = new Map<string, Owner>();
  private readonly slots: SlotQueue<AgentTask>;
  private stageValue: AgentStage = 'serving';
  private idleWaiters: Array<() => void> = [];
  /** The agent's environment, copied once: tasks start from it. */
  private readonly baseEnv: NodeJS.ProcessEnv = { ...process.env };
  /** Tasks and layouts of each workspace copy, kept apart. */
  private readonly copyUsers = new CopyUsers();
  private readonly setups: SetupSteps;
  private device: DeviceLoad;
  private resting = false;
  private loadQueued = false;
  private readonly pollTimer: NodeJS.Timeout;
  private readonly spoolDir: string;
  /** Lost tasks of a previous life, by owner, told to that dispatcher once. */
  private readonly orphans = new Map<string, string[]>();

  /** Manifest entries of unfinished syncs, bounded across all sessions. */
  private readonly syncBudget = new EntryBudget();

  constructor(private readonly config: AgentConfig) {
    mkdirSync(join(config.workdir, 'tasks'), { recursive: true });
    this.setups = new SetupSteps(config.copies);
    this.spoolDir = join(config.workdir, 'spool');
    // Spools of a previous life are of no use: their tasks were ended.
    rmSync(this.spoolDir, { recursive: true, force: true });
    mkdirSync(this.spoolDir, { recursive: true });
    this.slots = new SlotQueue(config.maxJobs);
    for (const o of config.orphans ?? []) {
      this.orphans.set(o.owner, [...(this.orphans.get(o.owner) ?? []), o.task]);
    }
    this.device = readDeviceLoad(config.sysfsRoot);
    this.updateResting();
    this.pollTimer = setInterval(() => this.pollDevice(), config.loadPollMs);
    this.pollTimer.unref();
  }

  get stage(): AgentStage {
    return this.stageValue;
  }

  /** Takes a new, authenticated WebSocket from the transport. */
  accept(ws: WsLike, peer: string): void {
    // A draining agent still takes connections: a dispatcher reattaching
    // collects what ran; new runs are refused.
    if (this.stageValue === 'cancelling' || this.stageValue === 'stopped') {
      ws.close(CloseCode.GoingAway, `${ErrorCode.ShuttingDown}: agent is shutting down`);
      return;
    }
    const session = new Session(ws, peer, {
      greeted: (s) => this.greeted(s),
      task: (s, m) => this.taskFrame(s, m),
      sessionClosed: (s, e) => this.sessionClosed(s, e),
      syncReceiver: (connection) =>
        new SyncReceiver(
          connection,
          this.config.copies,
          this.config.logger,
          this.copyUsers,
          this.syncBudget,
        ),
      log: (level, msg, fields) => this.config.logger[level](msg, fields),
      heartbeatMs: this.config.heartbeatMs,
    });
    this.sessions.add(session);
  }

  /** The agent's hello; `owner` adds the tasks held for that dispatcher. */
  hello(owner?: string): HelloMessage {
    const c = this.config;
    const held = owner === undefined ? undefined : this.heldFor(owner);
    return {
      t: 'hello',
      protocol: PROTOCOL_VERSION,
      role: 'agent',
      id: c.id,
      name: c.name,
      version: OCTASK_VERSION,
      os: c.os,
      arch: c.arch,
      cpus: c.cpus,
      memory: totalmem(),
      maxJobs: c.maxJobs,
      running: this.slots.running,
      tags: c.tags,
      load: this.load(owner),
      ...(held ? { tasks: held } : {}),
    };
  }

  /** Capacity and load, with `owner`'s own share. */
  load(owner?: string): AgentLoad {
    let yoursRunning = 0;
    let yoursQueued = 0;
    if (owner !== undefined) {
      for (const t of this.tasks.values()) {
        if (t.owner !== owner) continue;
        if (t.state === 'waiting') yoursQueued++;
        else if (t.state !== 'exited') yoursRunning++;
      }
    }
    return {
      maxJobs: this.config.maxJobs,
      running: this.slots.running,
      queued: this.slots.queued,
      yoursRunning,
      yoursQueued,
      loadAvg: this.device.loadAvg,
      freeMemory: this.device.freeMemory,
      battery: this.device.battery,
      resting: this.resting,
      draining: this.stageValue !== 'serving',
    };
  }

  /** Stage one: take no new work (waiting tasks go back to their dispatchers); resolves when running tasks are done. */
  drain(): Promise<void> {
    if (this.stageValue === 'serving') this.stageValue = 'draining';
    this.loadChanged();
    this.config.logger.info('draining: no new tasks; waiting for running ones', {
      running: this.slots.running,
    });
    this.sendBackWaiting(ErrorCode.ShuttingDown, 'agent is shutting down and takes no new tasks');
    return this.whenIdle();
  }

  /** Stage two: end every running task (TERM, then KILL); resolves when they are gone. */
  cancelAll(): Promise<void> {
    this.stageValue = 'cancelling';
    this.config.logger.info('cancelling running tasks', { running: this.slots.running });
    this.sendBackWaiting(ErrorCode.ShuttingDown, 'agent is shutting down and takes no new tasks');
    for (const task of this.tasks.values()) task.process?.cancel();
    return this.whenIdle();
  }

  /** Closes every connection and stops the agent's timers. */
  closeSessions(): void {
    this.stageValue = 'stopped';
    clearInterval(this.pollTimer);
    for (const o of this.owners.values()) clearTimeout(o.graceTimer);
    for (const session of this.sessions)
      session.connection.close(CloseCode.GoingAway, 'agent stopped');
    for (const t of this.tasks.values()) t.spool.remove();
  }

  private whenIdle(): Promise<void> {
    if (this.slots.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // ── connections and owners ────────────────────────────────────────────

  private greeted(session: Session): HelloMessage {
    const hello = session.peerHello as HelloMessage;
    const owner = this.ownerOf(hello.id);
    const previous = owner.session;
    if (previous && previous !== session) {
      // The same dispatcher dialled again (its old link died without our
      // noticing yet): the new connection takes over its tasks.
      for (const t of [...previous.attached]) previous.detach(t);
      owner.session = undefined;
      previous.connection.close(
        CloseCode.GoingAway,
        'replaced by a new connection from the same dispatcher',
      );
    }
    owner.session = session;
    owner.graceMs = Math.min(hello.graceMs ?? DEFAULT_GRACE_MS, this.config.maxGraceMs);
    clearTimeout(owner.graceTimer);
    owner.graceTimer = undefined;
    const reply = this.hello(hello.id);
    // Lost tasks of a previous life are told once.
    this.orphans.delete(hello.id);
    return reply;
  }

  private ownerOf(id: string): Owner {
    let owner = this.owners.get(id);
    if (!owner) {
      owner = { session: undefined, graceMs: DEFAULT_GRACE_MS, graceTimer: undefined };
      this.owners.set(id, owner);
    }
    return owner;
  }

  private heldFor(owner: string): HelloMessage['tasks'] {
    const held = [...this.tasks.values()].filter((t) => t.owner === owner).map((t) => t.held());
    for (const task of this.orphans.get(owner) ?? []) held.push({ task, state: 'lost', seq: 0 });
    return held;
  }

  private sessionClosed(session: Session, _error: ConnectionError | undefined): void {
    this.sessions.delete(session);
    for (const t of [...session.attached]) session.detach(t);
    const id = session.owner;
    if (id === undefined) return;
    const owner = this.owners.get(id);
    if (!owner || owner.session !== session) return;
    owner.session = undefined;
    const holds = [...this.tasks.values()].some((t) => t.owner === id);
    if (!holds) {
      this.owners.delete(id);
      return;
    }
    this.config.logger.info('dispatcher away; its tasks go on for its grace period', {
      dispatcher: session.dispatcherName,
      graceMs: owner.graceMs,
    });
    owner.graceTimer = setTimeout(() => this.graceOver(id), owner.graceMs);
    owner.graceTimer.unref();
  }

  /** The dispatcher did not come back in time: its tasks end, and are forgotten once over. */
  private graceOver(id: string): void {
    const owner = this.owners.get(id);
    if (!owner || owner.session) return;
    this.config.logger.warn(
      'dispatcher did not come back within its grace period; ending its tasks',
      {
        dispatcher: id,
      },
    );
    // From here on nobody waits for these tasks: each is forgotten as it ends.
    owner.graceTimer = undefined;
    for (const t of [...this.tasks.values()]) {
      if (t.owner !== id) continue;
      if (t.state === 'exited') this.forget(t);
      else this.cancelTask(t);
    }
  }

  // ── task frames ───────────────────────────────────────────────────────

  private taskFrame(session: Session, message: TaskFrame): void {
    const owner = session.owner as string;
    const task = this.tasks.get(taskKey(owner, message.task));
    switch (message.t) {
      case 'run':
        if (task) {
          session.connection.send({
            t: 'refused',
            task: message.task,
            code: ErrorCode.DuplicateTask,
            message: `task ${message.task} is already held here`,
          });
          return;
        }
        this.run(session, message);
        return;
      case 'cancel':
        if (task) this.cancelTask(task);
        return;
      case 'attach':
        this.attach(session, task, message);
        return;
      case 'release':
        if (task?.state === 'exited') this.forget(task);
        return;
      case 'fetch':
        this.fetch(session, task, message);
        return;
    }
  }

  private run(session: Session, message: RunMessage): void {
    const auditBase = this.auditBase(session, message);
    const refuse = (code: string, reason: string): void => {
      session.connection.send({ t: 'refused', task: message.task, code, message: reason });
      this.config.audit({ ...auditBase, outcome: 'refused', reason });
    };
    if (this.stageValue !== 'serving')
      return refuse(ErrorCode.ShuttingDown, 'agent is shutting down and takes no new tasks');
    if (this.resting) return refuse(ErrorCode.Resting, this.restingReason());
    const verdict = checkCommand(this.config.policy, message.command);
    if (!verdict.allowed) return refuse(ErrorCode.PolicyRefused, verdict.reason);
    let folder: TaskFolder;
    try {
      folder = this.folderFor(session.owner as string, message);
    } catch (err) {
      return refuse(isOctaskError(err) ? err.code : ErrorCode.SpawnFailed, (err as Error).message);
    }
    const owner = session.owner as string;
    const spool = new OutputSpool(join(this.spoolDir, scratchName(`${owner}-${message.task}`)));
    const task = new AgentTask(owner, message, spool);
    this.tasks.set(task.key, task);
    session.attach(task);
    if (this.slots.offer(task)) {
      this.start(task, folder);
    } else {
      session.connection.send({ t: 'queued', task: task.id, ahead: this.slots.ahead(task) });
    }
    this.loadChanged();
  }

  private folderFor(owner: string, message: RunMessage): TaskFolder {
    return taskFolder(
      message,
      this.config.copies,
      this.config.workdir,
      `${owner.slice(0, 8)}-${message.task}`,
      this.config.logger,
    );
  }

  private auditBase(session: Session | undefined, message: RunMessage) {
    return {
      peer: session?.peer ?? 'detached',
      dispatcher: session?.dispatcherName ?? 'detached',
      task: message.task,
      command: message.command,
    };
  }

  /** A slot is taken for `task`: make its folder and start its process. */
  private start(task: AgentTask, folder: TaskFolder): void {
    const { message } = task;
    task.state = 'starting';
    const env = {
      ...this.baseEnv,
      ...message.env,
      OCTASK_TASK_ID: message.task,
      OCTASK_AGENT_NAME: this.config.name,
    };
    const output = (stream: OutputStream, data: Buffer): void => {
      const seq = task.spool.append(stream, data);
      // Only a session that has seen everything before gets live chunks;
      // one still catching up reads them from the spool.
      if (task.attached && task.cursor === seq) {
        task.cursor = seq + 1;
        task.attached.sendOutput(task.id, seq, stream, data);
      }
    };
    const proc = new TaskProcess(
      {
        command: message.command,
        env,
        cwd: folder.cwd,
        shell: this.config.shell,
        timeoutMs: message.timeoutMs,
        killGraceMs: this.config.killGraceMs,
        containment: new TaskContainment(
          {
            workdir: this.config.workdir,
            logger: this.config.logger,
            keeper: this.config.keeper,
            cgroups: this.config.cgroups,
          },
          message.task,
          task.owner,
        ),
      },
      {
        started: (pid) => {
          task.state = 'running';
          task.started = {
            t: 'started',
            task: task.id,
            pid,
            ...(folder.root !== undefined ? { root: folder.root } : {}),
          };
          task.attached?.connection.send(task.started);
        },
        output,
        spawnFailed: (reason) => {
          folder.cleanup();
          this.refuseStarted(task, ErrorCode.SpawnFailed, reason);
        },
        ended: (result) => {
          folder.cleanup();
          const finish = (artifacts?: ManifestEntry[]): void => {
            this.exited(task, { ...result, ...(artifacts ? { artifacts } : {}) });
          };
          if (message.workspace !== undefined && message.artifacts?.length) {
            void this.artifactsOf(task).then(finish);
          } else {
            finish();
          }
        },
      },
    );
    task.process = proc;
    folder.prepare((err) => {
      if (err) {
        this.refuseStarted(
          task,
          isOctaskError(err) ? err.code : ErrorCode.SpawnFailed,
          err.message,
        );
        return;
      }
      void this.enterCopy(task, folder, env, output).then(
        () => {
          proc.start();
          if (task.cancelRequested) proc.cancel();
        },
        (setupErr: Error) => {
          folder.cleanup();
          const code = isOctaskError(setupErr) ? setupErr.code : ErrorCode.SetupFailed;
          this.refuseStarted(task, code, setupErr.message);
        },
      );
    });
  }

  /**
   * A task in a workspace copy holds it (no layout rearranges it until the
   * task ends) and has its setup run first (agent/setupSteps.ts).
   */
  private async enterCopy(
    task: AgentTask,
    folder: TaskFolder,
    env: NodeJS.ProcessEnv,
    output: (stream: OutputStream, data: Buffer) => void,
  ): Promise<void> {
    const { message } = task;
    if (message.workspace === undefined) return;
    const workspace = message.workspace;
    const leave = await this.copyUsers.enter(workspace);
    folder.cleanup = () => {
      leave();
      // The last task out: count what the tasks made before the next sync asks.
      if (this.copyUsers.tasksIn(workspace) === 0)
        setImmediate(() => {
          if (this.copyUsers.tasksIn(workspace) > 0 || this.copyUsers.layingOut(workspace)) return;
          this.config.copies
            .countMade(workspace, () => this.copyUsers.changes(workspace))
            .catch((err: unknown) =>
              this.config.logger.debug('counting built files failed', { err }),
            );
        });
    };
    if (!message.setup) return;
    await this.setups.ensure(message.workspace, message.setup, {
      cwd: folder.cwd,
      env,
      shell: this.config.shell,
      timeoutMs: message.timeoutMs,
      killGraceMs: this.config.killGraceMs,
      // Contained like the task itself: what the setup leaves behind is ended with it.
      containment: () =>
        new TaskContainment(
          {
            workdir: this.config.workdir,
            logger: this.config.logger,
            keeper: this.config.keeper,
            cgroups: this.config.cgroups,
          },
          `${message.task}.setup`,
          task.owner,
        ),
      output,
    });
  }

  /** A task that had a slot could not start: its slot frees and its dispatcher hears why. */
  private refuseStarted(task: AgentTask, code: string, reason: string): void {
    task.attached?.connection.send({ t: 'refused', task: task.id, code, message: reason });
    this.config.audit({
      ...this.auditBase(task.attached, task.message),
      outcome: 'refused',
      reason,
    });
    this.forget(task);
    this.slotFreed();
  }

  private exited(
    task: AgentTask,
    result: {
      outcome: ExitOutcome;
      exitCode: number | null;
      signal: string | null;
      durationMs: number;
      artifacts?: ManifestEntry[];
    },
  ): void {
    const wasRunning = task.state !== 'waiting';
    task.state = 'exited';
    task.exit = {
      t: 'exit',
      task: task.id,
      ...result,
      running: this.slots.running - (wasRunning ? 1 : 0),
    };
    this.config.audit({
      ...this.auditBase(task.attached, task.message),
      outcome: result.outcome,
      exitCode: result.exitCode,
      signal: result.signal,
      durationMs: result.durationMs,
    });
    // The exit goes out before the slot frees: a draining agent closes its
    // connections when the last slot frees, and the exit must go first.
    if (task.attached && task.cursor === task.spool.nextSeq)
      task.attached.connection.send(task.exit);
    if (wasRunning) this.slotFreed();
    else this.loadChanged();
    this.trimExited(task.owner);
    const owner = this.owners.get(task.owner);
    // Nobody will come for it: its dispatcher's grace is over.
    if (!owner || (!owner.session && owner.graceTimer === undefined)) this.forget(task);
  }

  private slotFreed(): void {
    for (const next of this.slots.release()) {
      try {
        this.start(next, this.folderFor(next.owner, next.message));
      } catch (err) {
        this.refuseStarted(
          next,
          isOctaskError(err) ? err.code : ErrorCode.SpawnFailed,
          (err as Error).message,
        );
      }
    }
    this.loadChanged();
    if (this.slots.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private cancelTask(task: AgentTask): void {
    if (task.state === 'waiting') {
      this.slots.withdraw(task);
      this.exited(task, { outcome: 'cancelled', exitCode: null, signal: null, durationMs: 0 });
      return;
    }
    task.cancelRequested = true;
    task.process?.cancel();
  }

  /** Sends every waiting task back to its dispatcher with `code` (it places it elsewhere). */
  private sendBackWaiting(code: string, reason: string): void {
    for (const task of [...this.slots.queue]) {
      this.slots.withdraw(task);
      task.attached?.connection.send({ t: 'refused', task: task.id, code, message: reason });
      this.forget(task);
    }
    this.loadChanged();
  }

  private attach(session: Session, task: AgentTask | undefined, message: AttachMessage): void {
    if (!task) {
      session.connection.send({
        t: 'gone',
        task: message.task,
        reason: 'the agent does not hold this task (it restarted, or the grace period ran out)',
      });
      return;
    }
    task.attached?.detach(task);
    session.attach(task);
    if (task.state === 'waiting') {
      session.connection.send({ t: 'queued', task: task.id, ahead: this.slots.ahead(task) });
    }
    if (task.started) session.connection.send(task.started);
    for (const chunk of task.spool.read(message.fromSeq)) {
      session.sendOutput(task.id, chunk.seq, chunk.stream, chunk.data);
    }
    task.cursor = task.spool.nextSeq;
    if (task.exit) session.connection.send(task.exit);
  }

  /** The artifacts a finished task reports, remembered for the dispatcher's `fetch`. */
  private async artifactsOf(task: AgentTask): Promise<ManifestEntry[]> {
    const { workspace, artifacts } = task.message;
    if (workspace === undefined || !artifacts?.length) return [];
    try {
      const { entries, paths } = await this.config.copies.collect(workspace, artifacts);
      task.artifacts = paths;
      return entries;
    } catch (err) {
      this.config.logger.warn('could not collect artifacts', { task: task.id, err });
      return [];
    }
  }

  /** Streams the asked-for artifact contents, then says which could not be sent. */
  private fetch(session: Session, task: AgentTask | undefined, message: FetchMessage): void {
    const paths = task?.artifacts ?? new Map<string, string>();
    void sendBlobs(session.connection, message.task, message.hashes, paths).then((missing) =>
      session.connection.send({ t: 'fetchDone', task: message.task, missing }),
    );
  }

  private forget(task: AgentTask): void {
    this.tasks.delete(task.key);
    task.attached?.detach(task);
    task.spool.remove();
    const owner = this.owners.get(task.owner);
    if (owner && !owner.session && ![...this.tasks.values()].some((t) => t.owner === task.owner)) {
      clearTimeout(owner.graceTimer);
      this.owners.delete(task.owner);
    }
  }

  /** A dispatcher that never releases its finished tasks cannot grow the agent without bound. */
  private trimExited(owner: string): void {
    const exited = [...this.tasks.values()].filter(
      (t) => t.owner === owner && t.state === 'exited',
    );
    for (const t of exited.slice(0, Math.max(0, exited.length - MAX_EXITED_PER_OWNER)))
      this.forget(t);
  }

  // ── load ──────────────────────────────────────────────────────────────

  /** Tells every dispatcher the new figures, once per turn of the event loop however many changed. */
  private loadChanged(): void {
    if (this.loadQueued) return;
    this.loadQueued = true;
    setImmediate(() => {
      this.loadQueued = false;
      for (const s of this.sessions) {
        if (s.owner !== undefined) s.connection.send({ t: 'load', load: this.load(s.owner) });
      }
    });
  }

  private pollDevice(): void {
    const before = this.device;
    this.device = readDeviceLoad(this.config.sysfsRoot);
    const batteryChanged =
      before.battery?.level !== this.device.battery?.level ||
      before.battery?.charging !== this.device.battery?.charging;
    if (this.updateResting() || batteryChanged) this.loadChanged();
    else if (Math.abs(before.loadAvg - this.device.loadAvg) >= 0.5) this.loadChanged();
  }

  /** Applies the battery floor; true when the agent started or stopped resting. */
  private updateResting(): boolean {
    const rest = shouldRest(this.device.battery, this.config.batteryFloorPct);
    if (rest === this.resting) return false;
    this.resting = rest;
    this.config.logger.info(
      rest
        ? 'resting: battery low and discharging; no new work'
        : 'resting over: taking work again',
      {
        battery: this.device.battery,
        floor: this.config.batteryFloorPct,
      },
    );
    if (rest) this.sendBackWaiting(ErrorCode.Resting, this.restingReason());
    for (const next of this.slots.hold(rest))
      this.start(next, this.folderFor(next.owner, next.message));
    return true;
  }

  private restingReason(): string {
    const level = this.device.battery?.level ?? 0;
    return `agent ${this.config.name} is resting (battery ${level}%, below its floor of ${this.config.batteryFloorPct}%, and discharging)`;
  }
}
