import { createHash } from 'node:crypto';
import { mkdir, mkdirSync, rm, rmdir, stat } from 'node:fs';
import { hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, isOctaskError, OctaskError } from '../shared/errors';
import type { ConnectionError, WsLike } from '../shared/frameConnection';
import type { Logger } from '../shared/logger';
import type { FetchMessage, HelloMessage, ManifestEntry, RunMessage } from '../shared/protocol';
import { checkRelativePath } from '../shared/workspacePath';
import { sendBlobs } from './blobSender';
import type { ContentStore } from './contentStore';
import { EntryBudget, SyncReceiver } from './syncReceiver';
import type { WorkspaceCopies } from './workspaceCopy';
import { CloseCode, PROTOCOL_VERSION } from '../shared/protocol';
import { OCTASK_VERSION } from '../shared/version';
import type { AuditLog } from './audit';
import type { CommandPolicy } from './policy';
import { checkCommand } from './policy';
import type { TaskProcess as TaskProcessType } from './runner';
import { TaskProcess } from './runner';
import { Session } from './session';

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
  store: ContentStore;
  copies: WorkspaceCopies;
  keepWorkspacesMs: number;
}

/** A task's working folder: made (or checked) before it starts, cleaned after. */
interface TaskFolder {
  cwd: string;
  /** The workspace copy's root, when the task runs in one. */
  root?: string;
  prepare(done: (err: Error | null) => void): void;
  cleanup(): void;
}

/** Lifecycle: serving → draining (no new work) → cancelling (tasks ended) → stopped. */
export type AgentStage = 'serving' | 'draining' | 'cancelling' | 'stopped';

/** A stable id for an agent: the same host, port and name give the same id across restarts. */
export function agentId(name: string, port: number, host = hostname()): string {
  return createHash('sha256').update(`${host}\0${port}\0${name}`).digest('hex').slice(0, 16);
}

/**
 * The agent's core: accepts dispatcher connections, runs what they send
 * under the command policy, and shuts down in stages.
 */
export class Agent {
  private readonly sessions = new Set<Session>();
  private running = 0;
  private stageValue: AgentStage = 'serving';
  private idleWaiters: Array<() => void> = [];
  /** The agent's environment, copied once: tasks start from it. */
  private readonly baseEnv: NodeJS.ProcessEnv = { ...process.env };

  /** Manifest entries of unfinished syncs, bounded across all sessions. */
  private readonly syncBudget = new EntryBudget();

  constructor(private readonly config: AgentConfig) {
    mkdirSync(join(config.workdir, 'tasks'), { recursive: true });
  }

  /** Takes a new, authenticated WebSocket from the transport. */
  accept(ws: WsLike, peer: string): void {
    if (this.stageValue !== 'serving') {
      ws.close(CloseCode.GoingAway, `${ErrorCode.ShuttingDown}: agent is shutting down`);
      return;
    }
    const session = new Session(ws, peer, {
      hello: () => this.hello(),
      startTask: (s, m) => void this.startTask(s, m),
      sessionClosed: (s, e) => this.sessionClosed(s, e),
      syncReceiver: (connection) =>
        new SyncReceiver(
          connection,
          this.config.store,
          this.config.copies,
          this.config.logger,
          this.config.keepWorkspacesMs,
          this.syncBudget,
        ),
      fetch: (s, m) => this.fetch(s, m),
      log: (level, msg, fields) => this.config.logger[level](msg, fields),
    });
    this.sessions.add(session);
  }

  hello(): HelloMessage {
    const c = this.config;
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
      running: this.running,
      tags: c.tags,
    };
  }

  /** Stage one: take no new work; resolves when running tasks are done. */
  drain(): Promise<void> {
    if (this.stageValue === 'serving') this.stageValue = 'draining';
    this.config.logger.info('draining: no new tasks; waiting for running ones', {
      running: this.running,
    });
    return this.whenIdle();
  }

  /** Stage two: end every running task (TERM, then KILL); resolves when they are gone. */
  cancelAll(): Promise<void> {
    this.stageValue = 'cancelling';
    this.config.logger.info('cancelling running tasks', { running: this.running });
    for (const session of this.sessions) for (const task of session.tasks.values()) task.cancel();
    return this.whenIdle();
  }

  /** Closes every connection. */
  closeSessions(): void {
    this.stageValue = 'stopped';
    for (const session of this.sessions)
      session.connection.close(CloseCode.GoingAway, 'agent stopped');
  }

  private whenIdle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private sessionClosed(session: Session, _error: ConnectionError | undefined): void {
    this.sessions.delete(session);
  }

  private startTask(session: Session, message: RunMessage): TaskProcessType | undefined {
    const { audit } = this.config;
    const auditBase = {
      peer: session.peer,
      dispatcher: session.dispatcherName,
      task: message.task,
      command: message.command,
    };
    const refuse = (code: string, reason: string): undefined => {
      session.connection.send({ t: 'refused', task: message.task, code, message: reason });
      audit({ ...auditBase, outcome: 'refused', reason });
      return undefined;
    };
    if (this.stageValue !== 'serving')
      return refuse(ErrorCode.ShuttingDown, 'agent is shutting down and takes no new tasks');
    const verdict = checkCommand(this.config.policy, message.command);
    if (!verdict.allowed) return refuse(ErrorCode.PolicyRefused, verdict.reason);

    let folder: TaskFolder;
    try {
      folder = this.taskFolder(message);
    } catch (err) {
      return refuse(isOctaskError(err) ? err.code : ErrorCode.SpawnFailed, (err as Error).message);
    }
    const cleanup = folder.cleanup;
    this.running++;
    const task: TaskProcessType = new TaskProcess(
      {
        command: message.command,
        env: {
          ...this.baseEnv,
          ...message.env,
          OCTASK_TASK_ID: message.task,
          OCTASK_AGENT_NAME: this.config.name,
        },
        cwd: folder.cwd,
        shell: this.config.shell,
        timeoutMs: message.timeoutMs,
        killGraceMs: this.config.killGraceMs,
      },
      {
        started: (pid) =>
          session.connection.send({
            t: 'started',
            task: message.task,
            pid,
            ...(folder.root !== undefined ? { root: folder.root } : {}),
          }),
        output: (stream, data) => session.sendOutput(message.task, stream, data),
        spawnFailed: (reason) => {
          this.taskGone(session, message.task);
          cleanup();
          refuse(ErrorCode.SpawnFailed, reason);
        },
        ended: (result) => {
          cleanup();
          // The slot frees only once `exit` is sent: a draining agent closes
          // its connections when the last slot frees, and the exit must go first.
          const report = (artifacts?: ManifestEntry[]): void => {
            this.taskGone(session, message.task);
            session.connection.send({
              t: 'exit',
              task: message.task,
              ...result,
              running: this.running,
              ...(artifacts ? { artifacts } : {}),
            });
            audit({ ...auditBase, ...result });
          };
          if (message.workspace !== undefined && message.artifacts?.length) {
            void this.artifactsOf(session, message).then(report);
          } else {
            report();
          }
        },
      },
    );
    session.tasks.set(message.task, task);
    folder.prepare((err) => {
      if (err) {
        session.tasks.delete(message.task);
        this.taskGone(session, message.task);
        refuse(isOctaskError(err) ? err.code : ErrorCode.SpawnFailed, err.message);
        return;
      }
      task.start();
      if (session.isPaused) task.pause();
    });
    return task;
  }

  /** Where a task runs: its workspace copy (which must exist), or a scratch folder made for it. */
  private taskFolder(message: RunMessage): TaskFolder {
    if (message.workspace !== undefined) {
      const root = this.config.copies.dirOf(message.workspace);
      const sub = message.cwd && message.cwd !== '.' ? message.cwd : '';
      const bad = sub ? checkRelativePath(sub) : null;
      if (bad) throw new OctaskError(ErrorCode.BadPath, `--cwd ${JSON.stringify(sub)}: ${bad}`);
      const cwd = sub ? join(root, sub) : root;
      return {
        cwd,
        root,
        prepare: (done) =>
          stat(cwd, (err, st) => {
            if (!err && st.isDirectory()) return done(null);
            const what = sub ? `has no folder ${sub}` : 'is not synced to this agent';
            done(new OctaskError(ErrorCode.NoWorkspace, `workspace ${message.workspace} ${what}`));
          }),
        cleanup: () => undefined,
      };
    }
    const scratch = join(this.config.workdir, 'tasks', scratchName(message.task));
    const logger = this.config.logger;
    return {
      cwd: scratch,
      // Made off the event loop: a mkdir on the loop costs more than the rest of a task's bookkeeping.
      prepare: (done) => mkdir(scratch, { recursive: true }, (err) => done(err ?? null)),
      // Most tasks leave their folder empty: one rmdir, and rm -r only if not.
      cleanup: () =>
        rmdir(scratch, (err) => {
          if (!err || err.code === 'ENOENT') return;
          rm(scratch, { recursive: true, force: true }, (rmErr) => {
            if (rmErr) logger.warn('could not remove task folder', { scratch, err: rmErr });
          });
        }),
    };
  }

  /** The artifacts a finished task reports, remembered for the dispatcher's `fetch`. */
  private async artifactsOf(
    session: Session,
    message: RunMessage,
  ): Promise<ManifestEntry[] | undefined> {
    if (message.workspace === undefined || !message.artifacts?.length) return undefined;
    try {
      const { entries, paths } = await this.config.copies.collect(
        message.workspace,
        message.artifacts,
      );
      session.artifacts.set(message.task, paths);
      return entries;
    } catch (err) {
      this.config.logger.warn('could not collect artifacts', { task: message.task, err });
      return [];
    }
  }

  /** Streams the asked-for artifact contents, then says which could not be sent. */
  private fetch(session: Session, message: FetchMessage): void {
    const paths = session.artifacts.get(message.task) ?? new Map<string, string>();
    session.artifacts.delete(message.task);
    void sendBlobs(session.connection, message.task, message.hashes, paths).then((missing) =>
      session.connection.send({ t: 'fetchDone', task: message.task, missing }),
    );
  }

  private taskGone(session: Session, task: string): void {
    session.taskEnded(task);
    this.running--;
    if (this.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}

/** Task ids come from the network: keep only safe characters for a folder name. */
function scratchName(task: string): string {
  const safe = task.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
  return /^[A-Za-z0-9_-]/.test(safe) && safe === task
    ? safe
    : `t-${createHash('sha256').update(task).digest('hex').slice(0, 24)}`;
}
