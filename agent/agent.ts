import { createHash } from 'node:crypto';
import { mkdir, mkdirSync, rm, rmdir } from 'node:fs';
import { hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '../shared/errors';
import type { ConnectionError, WsLike } from '../shared/frameConnection';
import type { Logger } from '../shared/logger';
import type { HelloMessage, RunMessage } from '../shared/protocol';
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

  constructor(private readonly config: AgentConfig) {
    mkdirSync(join(config.workdir, 'tasks'), { recursive: true });
  }

  get stage(): AgentStage {
    return this.stageValue;
  }

  get runningTasks(): number {
    return this.running;
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
    const { logger, audit } = this.config;
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

    const scratch = join(this.config.workdir, 'tasks', scratchName(message.task));
    const cleanup = (): void => {
      // Most tasks leave their folder empty: one rmdir, and rm -r only if not.
      rmdir(scratch, (err) => {
        if (!err || err.code === 'ENOENT') return;
        rm(scratch, { recursive: true, force: true }, (rmErr) => {
          if (rmErr) logger.warn('could not remove task folder', { scratch, err: rmErr });
        });
      });
    };
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
        cwd: scratch,
        shell: this.config.shell,
        timeoutMs: message.timeoutMs,
        killGraceMs: this.config.killGraceMs,
      },
      {
        started: (pid) => session.connection.send({ t: 'started', task: message.task, pid }),
        output: (stream, data) => session.sendOutput(message.task, stream, data),
        spawnFailed: (reason) => {
          this.taskGone(session, message.task);
          cleanup();
          refuse(ErrorCode.SpawnFailed, reason);
        },
        ended: (result) => {
          this.taskGone(session, message.task);
          cleanup();
          session.connection.send({
            t: 'exit',
            task: message.task,
            ...result,
            running: this.running,
          });
          audit({ ...auditBase, ...result });
        },
      },
    );
    session.tasks.set(message.task, task);
    // Made off the event loop: a mkdir on the loop costs more than the rest of a task's bookkeeping.
    mkdir(scratch, { recursive: true }, (err) => {
      if (err) {
        session.tasks.delete(message.task);
        this.taskGone(session, message.task);
        refuse(ErrorCode.SpawnFailed, `cannot create the task's folder ${scratch}: ${err.message}`);
        return;
      }
      task.start();
      if (session.isPaused) task.pause();
    });
    return task;
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
