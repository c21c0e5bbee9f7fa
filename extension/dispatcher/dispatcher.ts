import { randomBytes } from 'node:crypto';
import { arch, cpus, hostname, platform, totalmem } from 'node:os';
import type { ClusterKey } from '../../shared/clusterKey';
import { timeoutSecProblem } from '../../shared/validate';
import { ErrorCode, OctaskError } from '../../shared/errors';
import type { ConnectionError } from '../../shared/frameConnection';
import type { Logger } from '../../shared/logger';
import { silentLogger } from '../../shared/logger';
import type { DispatcherBound, HelloMessage } from '../../shared/protocol';
import { DEFAULT_AGENT_PORT, PROTOCOL_VERSION } from '../../shared/protocol';
import type { AgentInfo, ArtifactsInfo, SyncInfo, TaskInfo, TaskSpec } from '../../shared/rpc';
import type { ExitMessage } from '../../shared/protocol';
import { ArtifactFetches } from './sync/artifactFetches';
import type { PreparedWorkspace } from './sync/preparedWorkspace';
import type { SyncOutcome } from './sync/workspaceSyncs';
import { WorkspaceSyncs } from './sync/workspaceSyncs';
import { OCTASK_VERSION } from '../../shared/version';
import { AgentLink } from './agentLink';
import type { DiscoveredAgent } from './discovery';
import { browseAgents } from './discovery';
import { Emitter } from './emitter';
import type { Placement } from './scheduler';
import { Scheduler } from './scheduler';
import { TaskTable } from './taskTable';
import type { AgentAddress } from './transport';
import { formatAddress, parseAddress } from './transport';

export interface DispatcherOptions {
  key: ClusterKey;
  /** Addresses to dial (host:port). */
  agents?: string[];
  /** Browse the LAN for agents by mDNS. */
  mdns?: boolean;
  logger?: Logger;
  connectTimeoutMs?: number;
  /** Reconnect backoff bounds, for tests. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface OutputChunk {
  task: string;
  stream: 'stdout' | 'stderr';
  data: Uint8Array;
}

export interface DispatcherEvents {
  agent: AgentInfo;
  task: TaskInfo;
  output: OutputChunk;
  sync: SyncInfo;
  artifacts: ArtifactsInfo;
}

/**
 * The headless dispatcher: keeps links to agents, places tasks on their
 * slots (event-driven), follows them to an end, and retries what an agent
 * lost. Used by the CLI in-process and by the editor through JSON-RPC.
 *
 * Longer than the house limit on purpose: placement, task states, links,
 * syncs and artifact fetches each live in their own module; what is left
 * here is the wiring between them, which has to see all of them at once.
 */
export class Dispatcher extends Emitter<DispatcherEvents> {
  private readonly links = new Map<string, AgentLink>();
  private readonly scheduler = new Scheduler();
  readonly tasks = new TaskTable();
  private readonly logger: Logger;
  private readonly hello: HelloMessage;
  private discovery: { stop(): void } | undefined;
  /** mDNS instance name → the link it led to. */
  private readonly discovered = new Map<string, string>();
  private closed = false;
  private readonly syncs = new WorkspaceSyncs((link, ws, outcome) =>
    this.syncDone(link, ws, outcome),
  );
  private readonly fetches: ArtifactFetches;

  constructor(private readonly options: DispatcherOptions) {
    super();
    this.logger = options.logger ?? silentLogger;
    this.fetches = new ArtifactFetches(this.logger);
    this.hello = {
      t: 'hello',
      protocol: PROTOCOL_VERSION,
      role: 'dispatcher',
      id: randomBytes(8).toString('hex'),
      name: hostname(),
      version: OCTASK_VERSION,
      os: platform(),
      arch: arch(),
      cpus: cpus().length,
      memory: totalmem(),
      maxJobs: 0,
      running: 0,
      tags: [],
    };
  }

  start(): void {
    for (const address of this.options.agents ?? []) this.addAgent(address);
    if (this.options.mdns) {
      this.discovery = browseAgents(
        { up: (a) => this.discoveredUp(a), down: (i) => this.discoveredDown(i) },
        this.logger,
      );
    }
  }

  /** Dials an agent by address; returns its entry (existing or new). */
  addAgent(text: string, source: 'listed' | 'mdns' = 'listed'): AgentInfo {
    return this.link(parseAddress(text, DEFAULT_AGENT_PORT), source).info();
  }

  /** Forgets an agent; its running tasks are treated as lost. */
  removeAgent(text: string): boolean {
    const key = formatAddress(parseAddress(text, DEFAULT_AGENT_PORT));
    const link = this.links.get(key);
    if (!link) return false;
    link.close();
    this.links.delete(key);
    this.agentDown(link, { code: ErrorCode.Unreachable, message: 'agent removed' });
    return true;
  }

  agents(): AgentInfo[] {
    return [...this.links.values()].map((l) => l.info());
  }

  /**
   * Resolves when every known agent's first connection attempt has an
   * outcome, and mDNS (if on) has had `mdnsWindowMs` to answer.
   */
  async settled(mdnsWindowMs = 1500): Promise<void> {
    if (this.discovery) await new Promise((r) => setTimeout(r, mdnsWindowMs));
    let pending = [...this.links.values()];
    while (pending.length > 0) {
      await Promise.all(pending.map((l) => l.settled));
      // mDNS may have added links while we waited.
      pending = [...this.links.values()].filter((l) => l.status === 'connecting');
    }
  }

  /** Queues a task spec (shards, `all`, retries); returns the tasks made. */
  submit(spec: TaskSpec, workspace?: PreparedWorkspace): TaskInfo[] {
    const target = spec.target ?? { kind: 'any' };
    const shards = spec.shards ?? 1;
    if (typeof spec.command !== 'string' || spec.command.trim() === '') {
      throw new OctaskError(ErrorCode.BadRequest, 'the command is empty');
    }
    if (!Number.isInteger(shards) || shards < 1 || shards > 10_000) {
      throw new OctaskError(ErrorCode.BadRequest, 'shards must be a whole number from 1 to 10000');
    }
    const badTimeout = timeoutSecProblem(spec.timeoutSec);
    if (badTimeout) throw new OctaskError(ErrorCode.BadRequest, badTimeout);
    const placements: Array<{ where: Placement; shard: number | null; agent: string | null }> = [];
    if (target.kind === 'all') {
      if (shards > 1)
        throw new OctaskError(ErrorCode.BadRequest, 'target all and shards do not combine');
      const online = [...this.links.values()].filter((l) => l.isOnline && l.agentHello);
      if (online.length === 0) throw new OctaskError(ErrorCode.NoAgents, this.noAgentsMessage());
      for (const l of online)
        placements.push({ where: { kind: 'agentId', id: l.key }, shard: null, agent: l.name });
    } else {
      if (target.kind === 'agent' && !this.findByName(target.name)) {
        const known = [...this.links.values()].map((l) => l.name).join(', ') || 'none';
        throw new OctaskError(
          ErrorCode.NoSuchAgent,
          `no agent named ${JSON.stringify(target.name)} (known: ${known})`,
        );
      }
      const where: Placement =
        target.kind === 'agent' ? { kind: 'name', name: target.name } : { kind: 'any' };
      for (let i = 0; i < shards; i++)
        placements.push({ where, shard: shards > 1 ? i : null, agent: null });
    }
    const made = this.tasks.create(spec, placements, shards, workspace);
    for (const t of made) {
      this.scheduler.enqueue(t.info.id, t.where);
      this.emit('task', t.info);
    }
    this.schedule();
    return made.map((t) => ({ ...t.info }));
  }

  /** Cancels a queued or running task; false if it is unknown or already over. */
  cancel(id: string): boolean {
    const task = this.tasks.get(id);
    if (!task || task.final) return false;
    if (task.info.status === 'pending') {
      this.scheduler.dequeue(id);
      this.finish(id, 'cancelled', null);
      return true;
    }
    task.cancelRequested = true;
    const link = task.link ? this.links.get(task.link) : undefined;
    if (!task.runSent) {
      // Still syncing: nothing runs on the agent yet.
      if (task.link) this.scheduler.release(task.link);
      this.finish(id, 'cancelled', null);
      this.schedule();
      return true;
    }
    if (!link?.send({ t: 'cancel', task: id })) this.finish(id, 'cancelled', null);
    return true;
  }

  /** Ends every task still queued (e.g. no agent came), with the reason. */
  failPending(error: ConnectionError): void {
    for (const id of [...this.scheduler.queued]) {
      this.scheduler.dequeue(id);
      this.finish(id, 'lost', error);
    }
  }

  /** Stops reading agents' sockets (the consumer of output is behind); TCP pushes back. */
  pauseOutput(): void {
    for (const l of this.links.values()) l.pause();
  }

  resumeOutput(): void {
    for (const l of this.links.values()) l.resume();
  }

  close(): void {
    this.closed = true;
    this.discovery?.stop();
    for (const l of this.links.values()) l.close();
  }

  private link(
    address: AgentAddress,
    source: 'listed' | 'mdns',
    start = true,
    advertisedName?: string,
  ): AgentLink {
    const key = formatAddress(address);
    const existing = this.links.get(key);
    if (existing) return existing;
    const link = new AgentLink(
      {
        address,
        source,
        advertisedName,
        key: this.options.key,
        hello: this.hello,
        connectTimeoutMs: this.options.connectTimeoutMs,
        minBackoffMs: this.options.minBackoffMs,
        maxBackoffMs: this.options.maxBackoffMs,
      },
      {
        changed: (l) => this.agentChanged(l),
        message: (l, m) => this.agentMessage(l, m),
        down: (l, e) => this.agentDown(l, e),
      },
    );
    this.links.set(key, link);
    if (!this.closed && start) link.start();
    return link;
  }

  private discoveredUp(agent: DiscoveredAgent): void {
    const already = [...this.links.values()].some(
      (l) => l.agentHello?.id === agent.id && l.isOnline,
    );
    if (already) return;
    const address = { host: agent.host, port: agent.port, secure: agent.secure };
    // The TXT record names the agent's key: one of another cluster is shown
    // as such without a handshake it could only fail.
    const wrongKey = agent.keyId !== '' && agent.keyId !== this.options.key.id;
    const link = this.link(address, 'mdns', !wrongKey, agent.name);
    this.discovered.set(agent.instance, link.key);
    if (wrongKey) {
      link.markRefused('wrong_key', {
        code: ErrorCode.WrongKey,
        message: `${agent.name} advertises cluster key id ${agent.keyId}; this dispatcher holds ${this.options.key.id}`,
      });
    }
  }

  /** An advertisement went away: forget the agent unless it is still connected. */
  private discoveredDown(instance: string): void {
    const key = this.discovered.get(instance);
    this.discovered.delete(instance);
    const link = key ? this.links.get(key) : undefined;
    if (!link || link.options.source !== 'mdns' || link.isOnline) return;
    link.close();
    this.links.delete(link.key);
    this.emit('agent', { ...link.info(), status: 'offline' });
  }

  private findByName(name: string): AgentLink | undefined {
    return [...this.links.values()].find((l) => l.name === name || l.key === name);
  }

  private noAgentsMessage(): string {
    const reasons = [...this.links.values()].map(
      (l) => `${l.key}: ${l.lastError?.message ?? l.status}`,
    );
    return reasons.length === 0
      ? 'no agent found; list one with --agent HOST:PORT, or start one (octask-agent)'
      : `no agent is online (${reasons.join('; ')})`;
  }

  private agentChanged(link: AgentLink): void {
    if (link.isOnline && link.agentHello) {
      // Another link already reaches this same agent (listed and found by mDNS).
      const twin = [...this.links.values()].find(
        (l) => l !== link && l.isOnline && l.agentHello?.id === link.agentHello?.id,
      );
      if (twin && !this.scheduler.isOnline(link.key)) {
        this.links.delete(link.key);
        link.close();
        return;
      }
      if (!this.scheduler.isOnline(link.key)) {
        this.scheduler.agentOnline(
          { id: link.key, name: link.name, slots: link.agentHello.maxJobs },
          link.running,
        );
        this.logger.info(`agent ${link.name} joined`, {
          address: link.key,
          slots: link.agentHello.maxJobs,
        });
        this.schedule();
      }
    }
    this.emit('agent', link.info());
  }

  private agentDown(link: AgentLink, error: ConnectionError | undefined): void {
    this.scheduler.agentOffline(link.key);
    this.syncs.linkDown(link.key);
    this.fetches.linkDown(link.key);
    this.logger.warn(`agent ${link.name} lost`, { address: link.key, error });
    for (const task of this.tasks.runningOn(link.key)) {
      if (task.cancelRequested) {
        this.finish(task.info.id, 'cancelled', null);
      } else if (task.lostRetriesLeft > 0 && task.where.kind !== 'agentId') {
        task.lostRetriesLeft--;
        this.requeue(task.info.id, `agent ${link.name} lost; retrying`);
      } else {
        this.finish(task.info.id, 'lost', {
          code: ErrorCode.Unreachable,
          message: `agent ${link.name} was lost while running the task`,
        });
      }
    }
    // Tasks pinned to this agent (target all) can no longer run.
    for (const id of this.scheduler.unplaceable()) {
      const task = this.tasks.get(id);
      if (task?.where.kind === 'agentId' && task.where.id === link.key) {
        this.scheduler.dequeue(id);
        this.finish(id, 'lost', {
          code: ErrorCode.Unreachable,
          message: `agent ${link.name} is gone`,
        });
      }
    }
    this.schedule();
  }

  private agentMessage(link: AgentLink, message: DispatcherBound): void {
    if (this.syncs.receive(message)) return;
    switch (message.t) {
      case 'blob':
        this.fetches.blob(message);
        return;
      case 'fetchDone':
        this.fetches.finished(message);
        return;
      case 'output':
        if (this.tasks.get(message.task)?.link === link.key) {
          this.emit('output', { task: message.task, stream: message.stream, data: message.data });
        }
        return;
      case 'exit': {
        link.running = message.running;
        link.updateBusy();
        const task = this.tasks.get(message.task);
        if (!task || task.link !== link.key) return;
        if (task.workspace) this.syncs.forget(link.key, task.workspace.id);
        if (message.artifacts && message.artifacts.length > 0 && task.workspace) {
          this.fetches.start(
            link.key,
            (m) => link.send(m),
            task.workspace.root,
            message,
            (stats) => {
              this.emit('artifacts', { task: message.task, ...stats });
              this.taskExited(link, message);
            },
          );
          return;
        }
        this.taskExited(link, message);
        return;
      }
      case 'refused': {
        const task = this.tasks.get(message.task);
        if (!task || task.link !== link.key) return;
        this.scheduler.release(link.key);
        if (message.code === ErrorCode.ShuttingDown) {
          // The agent is draining: take it out of rotation, run the task elsewhere.
          this.scheduler.agentOffline(link.key);
          this.requeue(message.task, `agent ${link.name} is shutting down`);
        } else {
          this.finish(message.task, 'failed', {
            code: message.code,
            message: `${link.name}: ${message.message}`,
          });
        }
        this.schedule();
        return;
      }
      case 'started': {
        const record = this.tasks.get(message.task);
        if (message.root !== undefined && record && record.info.agentRoot !== message.root) {
          record.info.agentRoot = message.root;
          this.emit('task', record.info);
        }
        return;
      }
      case 'error':
        this.logger.warn(`agent ${link.name} reported an error`, {
          code: message.code,
          message: message.message,
        });
        return;
      case 'hello':
        return;
    }
  }

  /** The task's process ended (and its artifacts, if any, are in): settle it. */
  private taskExited(link: AgentLink, message: ExitMessage): void {
    const task = this.tasks.get(message.task);
    if (!task || task.link !== link.key) return;
    this.scheduler.release(link.key);
    task.info.exitCode = message.exitCode;
    task.info.signal = message.signal;
    task.info.durationMs = message.durationMs;
    if (message.outcome === 'failed' && task.retriesLeft > 0 && !task.cancelRequested) {
      task.retriesLeft--;
      this.requeue(message.task, `exit code ${message.exitCode ?? message.signal}; retrying`);
    } else {
      this.finish(message.task, message.outcome, null);
    }
    this.schedule();
  }

  private syncDone(linkKey: string, workspace: PreparedWorkspace, outcome: SyncOutcome): void {
    const agent = this.links.get(linkKey)?.name ?? linkKey;
    const error = 'files' in outcome ? null : { code: outcome.code, message: outcome.message };
    const stats =
      'files' in outcome
        ? outcome
        : { files: workspace.entries.length, filesSent: 0, bytesSent: 0, ms: 0 };
    if (error) this.logger.warn(`sync to ${agent} failed: ${error.message}`, { code: error.code });
    else
      this.logger.info(
        `synced workspace to ${agent}: ${stats.filesSent} of ${stats.files} files sent (${stats.bytesSent} bytes) in ${stats.ms} ms`,
      );
    this.emit('sync', { agent, workspace: workspace.id, root: workspace.root, ...stats, error });
  }

  /** Sends the run, after bringing the agent's copy of the workspace up to date if the task has one. */
  private startOn(link: AgentLink, id: string): void {
    const task = this.tasks.get(id);
    if (!task) return;
    const run = (): void => {
      if (task.info.status !== 'running' || task.link !== link.key || task.runSent) return;
      task.runSent = true;
      const sent = link.send({
        t: 'run',
        task: id,
        command: task.spec.command,
        env: task.env,
        timeoutMs: Math.round((task.spec.timeoutSec ?? 0) * 1000),
        ...(task.workspace
          ? {
              workspace: task.workspace.id,
              cwd: task.spec.cwd ?? '',
              artifacts: task.spec.artifacts ?? [],
            }
          : {}),
      });
      if (!sent) this.agentDown(link, { code: ErrorCode.Unreachable, message: 'not connected' });
    };
    const frames = link.frames;
    if (!task.workspace || !frames) {
      run();
      return;
    }
    void this.syncs.ensure(link.key, frames, task.workspace).then((outcome) => {
      if ('files' in outcome) {
        run();
      } else if (task.info.status === 'running' && task.link === link.key && !task.runSent) {
        this.scheduler.release(link.key);
        this.finish(id, 'failed', { code: outcome.code, message: outcome.message });
        this.schedule();
      }
    });
  }

  private requeue(id: string, why: string): void {
    const task = this.tasks.transition(id, 'pending');
    task.link = null;
    this.logger.info(`task ${id} requeued: ${why}`);
    this.scheduler.enqueue(id, task.where, true);
    this.emit('task', task.info);
  }

  private finish(id: string, status: TaskInfo['status'], error: ConnectionError | null): void {
    const task = this.tasks.transition(id, status);
    task.info.error = error;
    if (status === 'failed' || status === 'lost' || status === 'timed_out') {
      this.logger.info(`task ${id} ${status}`, {
        agent: task.info.agent,
        exitCode: task.info.exitCode,
        error,
      });
    }
    this.emit('task', task.info);
  }

  /** Places whatever can be placed now. */
  private schedule(): void {
    for (const { task: id, agent } of this.scheduler.place()) {
      const link = this.links.get(agent);
      const task = this.tasks.transition(id, 'running');
      task.link = agent;
      task.info.agent = link?.name ?? agent;
      if (link) {
        link.running++;
        link.updateBusy();
      }
      task.runSent = false;
      this.logger.info(`task ${id} placed on ${task.info.agent}`, { command: task.spec.command });
      this.emit('task', task.info);
      if (link) this.startOn(link, id);
    }
  }
}
