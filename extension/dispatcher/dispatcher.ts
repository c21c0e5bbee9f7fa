import { randomBytes } from 'node:crypto';
import { arch, cpus, hostname, platform, totalmem } from 'node:os';
import type { ClusterKey } from '../../shared/clusterKey';
import { blobsOf } from '../../shared/blobSender';
import { timeoutSecProblem } from '../../shared/validate';
import { ErrorCode, OctaskError } from '../../shared/errors';
import type { ConnectionError } from '../../shared/frameConnection';
import type { Logger } from '../../shared/logger';
import { silentLogger } from '../../shared/logger';
import type { DispatcherBound, ExitMessage, HelloMessage } from '../../shared/protocol';
import { DEFAULT_AGENT_PORT, PROTOCOL_VERSION } from '../../shared/protocol';
import type {
  AgentInfo,
  ArtifactsInfo,
  SyncInfo,
  SyncProgressInfo,
  TaskInfo,
  TaskSpec,
} from '../../shared/rpc';
import type { AttemptRef, FinalStatus } from '../../shared/taskLifecycle';
import { attemptOf, holdsAgent } from '../../shared/taskLifecycle';
import { OCTASK_VERSION } from '../../shared/version';
import type { Link, LinkEvents, LinkOptions } from './agentLink';
import { AgentLink } from './agentLink';
import type { DiscoveredAgent } from './discovery';
import { browseAgents } from './discovery';
import { Emitter } from './emitter';
import { labelAgents } from './agentLabels';
import type { Placement } from './scheduler';
import { Scheduler } from './scheduler';
import { ArtifactFetches } from './sync/artifactFetches';
import type { PreparedWorkspace } from './sync/preparedWorkspace';
import type { WorkspaceFeed } from './sync/workspaceFeed';
import { streamTargets } from './streamTargets';
import { noSyncStats } from './sync/syncSender';
import {
  artifactGlobs,
  checkWorkspaceTask,
  placeArtifacts,
  setupStep,
  unmatchedArtifactGlobs,
} from './sync/taskPaths';
import type { SyncOutcome } from './sync/workspaceSyncs';
import { WorkspaceSyncs } from './sync/workspaceSyncs';
import type { TaskRecord } from './taskTable';
import { TaskTable } from './taskTable';
import type { AgentAddress } from './transport';
import { formatAddress, parseAddress } from './transport';

/** Default wait after a link drops before its tasks are run elsewhere. */
export const DEFAULT_LOST_AFTER_MS = 60_000;
/** Default time an agent keeps a disconnected dispatcher's tasks (a CLI run; the editor asks for more). */
export const DEFAULT_GRACE_MS = 2 * 60_000;

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
  /** Ping interval of each link, for tests. */
  heartbeatMs?: number;
  /** This dispatcher's stable id (agents keep its tasks under it); random if absent. */
  id?: string;
  /** How long agents keep this dispatcher's tasks running while it is away. */
  graceMs?: number;
  /** How long a dropped link may stay down before its tasks run elsewhere. */
  lostAfterMs?: number;
  /** Makes the link to one agent; tests hand in fake links that need no sockets. */
  createLink?: (options: LinkOptions, events: LinkEvents) => Link;
}

export interface OutputChunk {
  task: string;
  stream: 'stdout' | 'stderr';
  data: Uint8Array;
  /** The attempt's wire id and the chunk's seq in it (for the journal). */
  wireId: string;
  seq: number;
}

/** What a restarted dispatcher takes back of one task (see journal.ts). */
export interface RestoredTask {
  info: TaskInfo;
  spec: TaskSpec;
  /** The attempt that was with an agent, and the last output seq seen of it. */
  attempt?: { agentAddress: string; wireId: string; lastSeq: number };
  workspace?: PreparedWorkspace;
}

export interface DispatcherEvents {
  agent: AgentInfo;
  task: TaskInfo;
  output: OutputChunk;
  sync: SyncInfo;
  /** A sync's contents on their way (at most every 200 ms per sync). */
  syncProgress: SyncProgressInfo;
  artifacts: ArtifactsInfo;
}

/**
 * The headless dispatcher: keeps links to agents, places tasks on what the
 * agents report free (event-driven), follows each task through its
 * lifecycle (shared/taskLifecycle.ts), and decides what a dropped link
 * means. A link lost is not an agent lost: its tasks are detached and
 * reattached when the link comes back; only after `lostAfterMs`, and only
 * if another agent can take them, are they run again elsewhere, and the
 * abandoned attempt is cancelled if its agent comes back. Used by the CLI
 * in-process and by the editor through JSON-RPC.
 *
 * Longer than the house limit on purpose: placement, phases, links, syncs
 * and artifact fetches each live in their own module; what is left here is
 * the wiring between them, which has to see all of them at once.
 */
export class Dispatcher extends Emitter<DispatcherEvents> {
  private readonly links = new Map<string, Link>();
  private readonly scheduler: Scheduler;
  readonly tasks = new TaskTable();
  private readonly logger: Logger;
  private readonly hello: HelloMessage;
  private discovery: { stop(): void } | undefined;
  /** mDNS instance name → the link it led to. */
  private readonly discovered = new Map<string, string>();
  private closed = false;
  private readonly syncs = new WorkspaceSyncs(
    (link, ws, outcome) => this.syncDone(link, ws, outcome),
    (link, ws, progress) =>
      this.emit('syncProgress', {
        agent: this.links.get(link)?.name ?? link,
        workspace: ws.id,
        ...progress,
      }),
  );
  private readonly fetches: ArtifactFetches;
  /** Attempts this dispatcher gave up on, by agent: cancelled there if it comes back. */
  private readonly abandoned = new Map<string, Set<string>>();
  private readonly lostAfterMs: number;
  private readonly graceMs: number;
  /** Names already warned about as shared by two agents. */
  private readonly warnedNames = new Set<string>();

  constructor(private readonly options: DispatcherOptions) {
    super();
    this.logger = options.logger ?? silentLogger;
    this.fetches = new ArtifactFetches(this.logger);
    this.lostAfterMs = options.lostAfterMs ?? DEFAULT_LOST_AFTER_MS;
    this.graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    this.scheduler = new Scheduler((task, agent) => {
      const ws = this.tasks.get(task)?.workspace;
      return ws !== undefined && this.syncs.has(agent, ws.id);
    });
    this.hello = {
      t: 'hello',
      protocol: PROTOCOL_VERSION,
      role: 'dispatcher',
      id: options.id ?? randomBytes(8).toString('hex'),
      name: hostname(),
      version: OCTASK_VERSION,
      os: platform(),
      arch: arch(),
      cpus: cpus().length,
      memory: totalmem(),
      maxJobs: 0,
      running: 0,
      tags: [],
      graceMs: this.graceMs,
    };
  }

  /** The id agents know this dispatcher by. */
  get id(): string {
    return this.hello.id;
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

  /** Forgets an agent; its tasks are lost. */
  removeAgent(text: string): boolean {
    const key = formatAddress(parseAddress(text, DEFAULT_AGENT_PORT));
    const link = this.links.get(key);
    if (!link) return false;
    link.close();
    this.links.delete(key);
    this.scheduler.agentOffline(key);
    for (const r of this.tasks.onAgent(key)) this.attemptLost(r, `agent ${link.name} removed`);
    this.relabel();
    this.schedule();
    return true;
  }

  /** Dials an agent now rather than after its backoff; false if unknown. */
  reconnect(text: string): boolean {
    const link = this.links.get(formatAddress(parseAddress(text, DEFAULT_AGENT_PORT)));
    link?.reconnectNow();
    return link !== undefined;
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

  /**
   * Streams a workspace while it is still hashed (`feed`) for `spec`'s
   * task to the agents it will surely sync to (streamTargets.ts) among
   * those online, now or joining before hashing is over, that have no copy
   * of it yet: their first sync then overlaps the hashing. A task of that
   * workspace placed on one later waits for it. The feed must end (it
   * does when its preparation ends, even without a full hashing).
   */
  streamTo(feed: WorkspaceFeed, spec: TaskSpec): void {
    const wants = streamTargets(spec);
    const offer = (): void => {
      if (feed.ended !== undefined || !feed.header) return;
      for (const link of this.links.values()) {
        const frames = link.frames;
        if (link.isOnline && frames && wants(link.info()))
          this.syncs.stream(link.key, frames, feed);
      }
    };
    const offAgent = this.on('agent', offer);
    let opened = feed.header !== undefined;
    const offFeed = feed.on(() => {
      if (feed.ended !== undefined) {
        offAgent();
        offFeed();
      } else if (!opened && feed.header) {
        opened = true;
        offer();
      }
    });
    offer();
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
    // Before anything is synced: a run refused for its cwd leaves the copies alone.
    if (workspace) checkWorkspaceTask(workspace, spec);
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
      this.scheduler.enqueue(t.info.id, t.where, t.info.group, { pack: spec.pack ?? false });
      this.emit('task', t.info);
    }
    this.schedule();
    return made.map((t) => ({ ...t.info }));
  }

  /**
   * Takes back the tasks a previous run of this dispatcher (same id) had,
   * before start(): queued ones queue again, those that were with an agent
   * wait detached for its link (and are reattached from the last output
   * they had), finished ones are listed as they ended.
   */
  restore(tasks: readonly RestoredTask[]): void {
    const now = Date.now();
    for (const t of tasks) {
      const where: Placement =
        t.spec.target?.kind === 'agent'
          ? { kind: 'name', name: t.spec.target.name }
          : { kind: 'any' };
      if (t.info.status !== 'pending' && t.info.status !== 'running') {
        const status = t.info.status;
        this.tasks.restore(
          t.info,
          t.spec,
          where,
          { phase: 'final', status, endedAt: t.info.endedAt ?? now },
          t.workspace,
          -1,
        );
        continue;
      }
      const a = t.attempt;
      if (!a || t.info.phase === 'queued' || t.info.phase === 'syncing') {
        this.tasks.restore(
          t.info,
          t.spec,
          where,
          { phase: 'queued', since: now, reason: 'the dispatcher restarted' },
          t.workspace,
          -1,
        );
        this.scheduler.enqueue(t.info.id, where, t.info.group, { pack: t.spec.pack ?? false });
        continue;
      }
      const link = this.link(parseAddress(a.agentAddress, DEFAULT_AGENT_PORT), 'listed');
      const record = this.tasks.restore(
        t.info,
        t.spec,
        // Target all pinned it to its agent; keep it there.
        t.info.shard === null && t.spec.target?.kind === 'all'
          ? { kind: 'agentId', id: link.key }
          : where,
        {
          phase: 'detached',
          since: now,
          was: t.info.phase === 'waiting' ? 'waiting' : 'running',
          startedAt: t.info.startedAt,
          agent: link.key,
          agentName: t.info.agent ?? link.name,
          wireId: a.wireId,
          attempt: t.info.attempts,
        },
        t.workspace,
        a.lastSeq,
      );
      this.armDetached(record);
      link.urgent = true;
    }
  }

  /** What the journal keeps of a task: enough to take it back after a restart. */
  journalRecord(id: string): RestoredTask | undefined {
    const r = this.tasks.get(id);
    if (!r) return undefined;
    const a = attemptOf(r.phase);
    return {
      info: { ...r.info },
      spec: r.spec,
      ...(a ? { attempt: { agentAddress: a.agent, wireId: a.wireId, lastSeq: r.lastSeq } } : {}),
    };
  }

  /** Cancels a queued or running task; false if it is unknown or already over. */
  cancel(id: string): boolean {
    const task = this.tasks.get(id);
    if (!task || task.phase.phase === 'final') return false;
    task.cancelRequested = true;
    const p = task.phase;
    switch (p.phase) {
      case 'queued':
        this.scheduler.dequeue(id);
        this.finish(task, 'cancelled', null);
        return true;
      case 'syncing':
        // Nothing runs on the agent yet.
        this.scheduler.release(p.agent, id);
        this.finish(task, 'cancelled', null);
        this.schedule();
        return true;
      case 'detached':
        // The agent may still run it: cancelled there when it comes back.
        this.abandon(p);
        this.finish(task, 'cancelled', null);
        return true;
      case 'waiting':
      case 'running':
        if (!this.links.get(p.agent)?.send({ t: 'cancel', task: p.wireId })) {
          this.abandon(p);
          this.finish(task, 'cancelled', null);
        }
        return true;
      case 'collecting':
        // The command is over; its artifacts finish coming back.
        return true;
    }
  }

  /** Ends every task still queued (e.g. no agent came), with the reason. */
  failPending(error: ConnectionError): void {
    for (const id of [...this.scheduler.queued]) {
      this.scheduler.dequeue(id);
      const task = this.tasks.get(id);
      if (task) this.finish(task, 'lost', error);
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
    for (const r of this.tasks.all()) for (const t of r.timers) clearTimeout(t);
  }

  // ── links ─────────────────────────────────────────────────────────────

  private link(
    address: AgentAddress,
    source: 'listed' | 'mdns',
    start = true,
    advertisedName?: string,
  ): Link {
    const key = formatAddress(address);
    const existing = this.links.get(key);
    if (existing) return existing;
    const options: LinkOptions = {
      address,
      source,
      advertisedName,
      key: this.options.key,
      hello: this.hello,
      connectTimeoutMs: this.options.connectTimeoutMs,
      minBackoffMs: this.options.minBackoffMs,
      maxBackoffMs: this.options.maxBackoffMs,
      heartbeatMs: this.options.heartbeatMs,
    };
    const events: LinkEvents = {
      changed: (l) => this.agentChanged(l),
      message: (l, m) => this.agentMessage(l, m),
      down: (l, e) => this.linkDown(l, e),
    };
    const link = this.options.createLink
      ? this.options.createLink(options, events)
      : new AgentLink(options, events);
    this.links.set(key, link);
    if (!this.closed && start) link.start();
    return link;
  }

  private discoveredUp(agent: DiscoveredAgent): void {
    const known = [...this.links.values()].find((l) => l.agentHello?.id === agent.id);
    if (known?.isOnline) return;
    // Seen again after a restart: dial now rather than at the end of a backoff.
    known?.reconnectNow();
    if (known) return;
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

  /** An advertisement went away: forget the agent unless it is still connected or holds tasks. */
  private discoveredDown(instance: string): void {
    const key = this.discovered.get(instance);
    this.discovered.delete(instance);
    const link = key ? this.links.get(key) : undefined;
    if (!link || link.options.source !== 'mdns' || link.isOnline) return;
    if (this.tasks.onAgent(link.key).length > 0) return;
    link.close();
    this.links.delete(link.key);
    this.emit('agent', { ...link.info(), status: 'offline' });
  }

  private findByName(name: string): Link | undefined {
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

  private agentChanged(link: Link): void {
    if (!link.isOnline && link.lastError?.code === ErrorCode.AgentDown) {
      // Its process is gone, and its tasks with it (the agent's keeper ends them):
      // no reason to wait out lost-after.
      for (const record of this.tasks.onAgent(link.key)) {
        if (record.phase.phase === 'detached')
          this.attemptLost(record, `${link.name} is not running any more`);
      }
    }
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
      const joined = !this.scheduler.isOnline(link.key);
      this.updateSlots(link);
      if (joined) {
        this.logger.info(`agent ${link.name} joined`, {
          address: link.key,
          slots: link.load?.maxJobs ?? link.agentHello.maxJobs,
        });
        this.relabel();
        this.reattach(link);
        this.reconsiderDetached();
      }
      this.schedule();
    }
    this.emit('agent', link.info());
  }

  private updateSlots(link: Link): void {
    const load = link.load;
    const hello = link.agentHello;
    if (!hello) return;
    this.scheduler.agentUpdate({
      id: link.key,
      name: link.name,
      maxJobs: load?.maxJobs ?? hello.maxJobs,
      running: load?.running ?? hello.running,
      queued: load?.queued ?? 0,
      yoursRunning: load?.yoursRunning ?? 0,
      yoursQueued: load?.yoursQueued ?? 0,
      resting: (load?.resting ?? false) || (load?.draining ?? false),
    });
  }

  /** Two agents with one name are both used; people tell them apart by label, and hear of it once. */
  private relabel(): void {
    const labels = labelAgents(
      [...this.links.values()].map((l) => ({ key: l.key, name: l.name, id: l.agentHello?.id })),
    );
    for (const l of this.links.values()) {
      const label = labels.get(l.key) ?? l.name;
      if (label !== l.name && !this.warnedNames.has(l.name)) {
        this.warnedNames.add(l.name);
        this.logger.warn(
          `two agents share the name ${l.name}; they are shown as ${l.name} and ${label} (give one --name to tell them apart)`,
        );
      }
      if (l.label !== label) {
        l.label = label;
        this.emit('agent', l.info());
      }
    }
  }

  /**
   * The link came back: follow the tasks this dispatcher left there, cancel
   * the attempts it gave up on, and settle those the agent no longer holds.
   */
  private reattach(link: Link): void {
    const held = new Map((link.agentHello?.tasks ?? []).map((h) => [h.task, h]));
    const mine = new Set<string>();
    for (const record of this.tasks.onAgent(link.key)) {
      const p = record.phase;
      if (p.phase !== 'detached') continue;
      const h = held.get(p.wireId);
      mine.add(p.wireId);
      if (!h || h.state === 'lost') {
        this.attemptLost(
          record,
          h
            ? `${link.name} restarted; the task was ended with it`
            : `${link.name} no longer holds the task`,
        );
        continue;
      }
      link.send({ t: 'attach', task: p.wireId, fromSeq: record.lastSeq + 1 });
      this.logger.info(`reattached to task ${record.info.id} on ${link.name}`, {
        task: record.info.id,
      });
      const back =
        h.state === 'queued'
          ? { ...p, phase: 'waiting' as const, since: Date.now(), ahead: -1 }
          : { ...p, phase: 'running' as const, startedAt: p.startedAt ?? Date.now() };
      this.scheduler.agentHolds(link.key, record.info.id, record.info.group);
      this.emit('task', this.tasks.move(record.info.id, back).info);
    }
    const gaveUp = this.abandoned.get(link.key) ?? new Set<string>();
    for (const h of held.values()) {
      if (mine.has(h.task) || h.state === 'lost') continue;
      // An attempt given up on (run elsewhere since, or cancelled while away), or one this
      // dispatcher no longer knows (it restarted without a journal): end it there.
      if (h.state !== 'exited') link.send({ t: 'cancel', task: h.task });
      link.send({ t: 'release', task: h.task });
      if (gaveUp.has(h.task))
        this.logger.info(`cancelled an abandoned attempt on ${link.name}`, { task: h.task });
    }
    this.abandoned.delete(link.key);
    link.urgent = false;
  }

  /** The link dropped: what the agent held is detached, not lost (the agent keeps it for our grace). */
  private linkDown(link: Link, error: ConnectionError | undefined): void {
    this.scheduler.agentOffline(link.key);
    this.syncs.linkDown(link.key);
    this.fetches.linkDown(link.key);
    this.logger.warn(`lost the connection to ${link.name}; reconnecting`, {
      address: link.key,
      error,
    });
    for (const record of this.tasks.onAgent(link.key)) {
      const p = record.phase;
      if (p.phase === 'syncing') {
        // No run was sent: nothing ran there.
        this.requeue(record, `lost the connection to ${link.name} while syncing`);
      } else if (p.phase === 'collecting') {
        // The command's result is in; only artifacts are missing. Never run it again for them.
        record.info.exitCode = p.exit.exitCode;
        record.info.signal = p.exit.signal;
        record.info.durationMs = p.exit.durationMs;
        this.finish(record, p.exit.outcome, {
          code: ErrorCode.Unreachable,
          message: `the connection to ${link.name} dropped while its artifacts were brought back; not all of them arrived`,
        });
      } else if (p.phase === 'waiting' || p.phase === 'running') {
        this.detach(record, p, link);
      }
    }
    if (this.tasks.onAgent(link.key).length > 0) link.urgent = true;
    this.schedule();
  }

  private detach(
    record: TaskRecord,
    p: AttemptRef & { phase: 'waiting' | 'running' },
    link: Link,
  ): void {
    const startedAt = p.phase === 'running' ? (record.info.startedAt ?? Date.now()) : null;
    const { agent, agentName, wireId, attempt } = p;
    this.tasks.move(record.info.id, {
      phase: 'detached',
      since: Date.now(),
      was: p.phase,
      startedAt,
      agent,
      agentName,
      wireId,
      attempt,
    });
    this.armDetached(record);
    this.logger.info(`task ${record.info.id} detached from ${link.name}; reconnecting`, {
      task: record.info.id,
    });
    this.emit('task', record.info);
  }

  /** Timers of a detached task, held by the record: any move clears them. */
  private armDetached(record: TaskRecord): void {
    record.timers.push(setTimeout(() => this.lostAfterPassed(record), this.lostAfterMs));
    record.timers.push(setTimeout(() => this.graceOver(record), this.graceMs));
    for (const t of record.timers) t.unref();
  }

  /**
   * The link has been down for lost-after: the task runs again on another
   * agent, if one can take it and it has lost-retries left. Otherwise it
   * keeps waiting for this agent, until the agent's grace for us is over.
   */
  private lostAfterPassed(record: TaskRecord): void {
    const p = record.phase;
    if (p.phase !== 'detached') return;
    if (record.lostRetriesLeft <= 0 || record.where.kind === 'agentId') return;
    if (!this.scheduler.hasOtherEligible(record.where, p.agent)) return;
    record.lostRetriesLeft--;
    this.abandon(p);
    this.requeue(record, `${p.agentName} lost`);
    this.schedule();
  }

  /** A new agent joined: detached tasks past lost-after may go there now. */
  private reconsiderDetached(): void {
    const now = Date.now();
    for (const record of this.tasks.all()) {
      const p = record.phase;
      if (p.phase === 'detached' && now - p.since >= this.lostAfterMs) this.lostAfterPassed(record);
    }
  }

  /** The agent has given up on us by now: the attempt is over. */
  private graceOver(record: TaskRecord): void {
    if (record.phase.phase !== 'detached') return;
    this.attemptLost(
      record,
      `${record.phase.agentName} did not come back within ${Math.round(this.graceMs / 1000)} s`,
    );
  }

  /** The attempt will not finish: run the task again if it may, else it is lost. */
  private attemptLost(record: TaskRecord, why: string, code: string = ErrorCode.Unreachable): void {
    const p = record.phase;
    const attempt = attemptOf(p);
    if (!attempt || p.phase === 'final') return;
    if (holdsAgent(p) || p.phase === 'syncing')
      this.scheduler.release(attempt.agent, record.info.id);
    if (p.phase === 'detached' || p.phase === 'waiting' || p.phase === 'running')
      this.abandon(attempt);
    if (record.cancelRequested) {
      this.finish(record, 'cancelled', null);
    } else if (record.lostRetriesLeft > 0 && record.where.kind !== 'agentId') {
      record.lostRetriesLeft--;
      this.requeue(record, why);
    } else {
      this.finish(record, 'lost', { code, message: why });
    }
    this.schedule();
  }

  private abandon(attempt: AttemptRef): void {
    let set = this.abandoned.get(attempt.agent);
    if (!set) this.abandoned.set(attempt.agent, (set = new Set()));
    set.add(attempt.wireId);
  }

  // ── frames from agents ────────────────────────────────────────────────

  private agentMessage(link: Link, message: DispatcherBound): void {
    if (this.syncs.receive(message)) return;
    switch (message.t) {
      case 'blob':
        this.fetches.blob(message);
        return;
      case 'blobs':
        for (const blob of blobsOf(message)) this.fetches.blob(blob);
        return;
      case 'fetchDone':
        this.fetches.finished(message);
        return;
      case 'load':
        this.updateSlots(link);
        this.emit('agent', link.info());
        this.schedule();
        return;
      case 'error':
        this.logger.warn(`agent ${link.name} reported an error`, {
          code: message.code,
          message: message.message,
        });
        return;
      case 'hello':
      case 'syncNeed':
      case 'syncStale':
      case 'syncDone':
      case 'syncFailed':
        return;
    }
    const record = this.tasks.byAttempt(link.key, message.task);
    if (!record) return; // an attempt given up on, or already settled
    const p = record.phase;
    switch (message.t) {
      case 'output':
        if (message.seq <= record.lastSeq) return; // replayed after a reattach: seen already
        record.lastSeq = message.seq;
        this.emit('output', {
          task: record.info.id,
          stream: message.stream,
          data: message.data,
          wireId: message.task,
          seq: message.seq,
        });
        return;
      case 'queued':
        if (p.phase === 'waiting') {
          this.emit('task', this.tasks.move(record.info.id, { ...p, ahead: message.ahead }).info);
        }
        return;
      case 'started':
        if (message.root !== undefined) record.info.agentRoot = message.root;
        if (p.phase === 'waiting') {
          this.emit(
            'task',
            this.tasks.move(record.info.id, { ...p, phase: 'running', startedAt: Date.now() }).info,
          );
        } else if (message.root !== undefined) {
          this.emit('task', record.info);
        }
        return;
      case 'exit':
        this.exited(link, record, message);
        return;
      case 'refused':
        this.refused(link, record, message.code, message.message);
        return;
      case 'gone':
        this.attemptLost(record, `${link.name}: ${message.reason}`, ErrorCode.TaskGone);
        return;
    }
  }

  private exited(link: Link, record: TaskRecord, message: ExitMessage): void {
    const p = record.phase;
    if (p.phase !== 'waiting' && p.phase !== 'running') return;
    if (record.workspace) this.syncs.forget(link.key, record.workspace.id);
    const exit = {
      outcome: message.outcome,
      exitCode: message.exitCode,
      signal: message.signal,
      durationMs: message.durationMs,
    };
    const startedAt = p.phase === 'running' ? p.startedAt : Date.now();
    const { agent, agentName, wireId, attempt } = p;
    const found = message.artifacts ?? [];
    if (record.spec.artifacts?.length && record.workspace && found.length === 0) {
      const unmatched = unmatchedArtifactGlobs(record.spec, found);
      const none = { files: 0, bytes: 0, skipped: [] };
      this.emit('artifacts', { task: record.info.id, agent: agentName, unmatched, ...none });
    }
    if (found.length > 0 && record.workspace) {
      const perAgent = record.spec.target?.kind === 'all' ? agentName : null;
      this.tasks.move(record.info.id, {
        phase: 'collecting',
        startedAt,
        exit,
        agent,
        agentName,
        wireId,
        attempt,
      });
      this.emit('task', record.info);
      this.fetches.start(
        link.key,
        (m) => link.send(m),
        record.workspace.root,
        { ...message, artifacts: placeArtifacts(record.spec, found, perAgent) },
        (stats) => {
          const unmatched = unmatchedArtifactGlobs(record.spec, found);
          this.emit('artifacts', { task: record.info.id, agent: agentName, unmatched, ...stats });
          if (record.phase.phase !== 'collecting' || record.phase.wireId !== wireId) return;
          link.send({ t: 'release', task: wireId });
          this.commandOver(record, exit);
        },
      );
      return;
    }
    link.send({ t: 'release', task: wireId });
    this.commandOver(record, exit);
  }

  /** The command ended (and its artifacts, if any, are in): retry it, or settle it. */
  private commandOver(
    record: TaskRecord,
    exit: {
      outcome: FinalStatus;
      exitCode: number | null;
      signal: string | null;
      durationMs: number;
    },
  ): void {
    const attempt = attemptOf(record.phase);
    if (attempt) this.scheduler.release(attempt.agent, record.info.id);
    record.info.exitCode = exit.exitCode;
    record.info.signal = exit.signal;
    record.info.durationMs = exit.durationMs;
    if (exit.outcome === 'failed' && record.retriesLeft > 0 && !record.cancelRequested) {
      record.retriesLeft--;
      this.requeue(record, `exit code ${exit.exitCode ?? exit.signal}; retrying`);
    } else {
      this.finish(record, exit.outcome, null);
    }
    this.schedule();
  }

  private refused(link: Link, record: TaskRecord, code: string, text: string): void {
    const attempt = attemptOf(record.phase);
    if (attempt) this.scheduler.release(attempt.agent, record.info.id);
    // Until its next report says otherwise, the agent takes nothing more.
    if (code === ErrorCode.ShuttingDown || code === ErrorCode.Resting)
      this.scheduler.markResting(link.key);
    if (
      (code === ErrorCode.ShuttingDown || code === ErrorCode.Resting) &&
      !record.cancelRequested
    ) {
      // The agent takes no new work for now: the task goes elsewhere (or waits here).
      this.requeue(
        record,
        `agent ${link.name} ${code === ErrorCode.Resting ? 'is resting' : 'is shutting down'}`,
      );
    } else {
      this.finish(record, 'failed', { code, message: `${link.name}: ${text}` });
    }
    this.schedule();
  }

  private syncDone(linkKey: string, workspace: PreparedWorkspace, outcome: SyncOutcome): void {
    const agent = this.links.get(linkKey)?.name ?? linkKey;
    const error = 'files' in outcome ? null : { code: outcome.code, message: outcome.message };
    const stats = 'files' in outcome ? outcome : noSyncStats(workspace.entryCount);
    if (error) this.logger.warn(`sync to ${agent} failed: ${error.message}`, { code: error.code });
    else
      this.logger.info(
        `synced workspace to ${agent}: ${stats.filesSent} of ${stats.files} files sent (${stats.bytesSent} bytes) in ${stats.ms} ms`,
      );
    this.emit('sync', { agent, workspace: workspace.id, root: workspace.root, ...stats, error });
  }

  // ── placement ─────────────────────────────────────────────────────────

  /** Places whatever can be placed now. */
  private schedule(): void {
    for (const { task: id, agent } of this.scheduler.place()) {
      const link = this.links.get(agent);
      const record = this.tasks.get(id);
      if (!record || !link) continue;
      const attempt = this.tasks.newAttempt(record, link.key, link.name);
      const since = Date.now();
      if (record.workspace && link.frames) {
        this.tasks.move(id, { phase: 'syncing', since, ...attempt });
        this.emit('task', record.info);
        this.logger.info(`task ${this.describe(record)} placed on ${link.name}`, { task: id });
        const frames = link.frames;
        const workspace = record.workspace;
        void this.syncs.ensure(link.key, frames, workspace).then((outcome) => {
          const now = record.phase;
          if (now.phase !== 'syncing' || now.wireId !== attempt.wireId) return;
          if ('files' in outcome) {
            this.sendRun(link, record, attempt);
          } else {
            this.scheduler.release(link.key, id);
            this.finish(record, 'failed', { code: outcome.code, message: outcome.message });
            this.schedule();
          }
        });
      } else {
        this.logger.info(`task ${this.describe(record)} placed on ${link.name}`, { task: id });
        this.sendRun(link, record, attempt);
      }
    }
  }

  private sendRun(link: Link, record: TaskRecord, attempt: AttemptRef): void {
    const spec = record.spec;
    this.tasks.move(record.info.id, { phase: 'waiting', since: Date.now(), ahead: -1, ...attempt });
    this.emit('task', record.info);
    const sent = link.send({
      t: 'run',
      task: attempt.wireId,
      command: spec.command,
      env: record.env,
      timeoutMs: Math.round((spec.timeoutSec ?? 0) * 1000),
      ...(record.workspace
        ? {
            workspace: record.workspace.id,
            cwd: spec.cwd ?? '',
            artifacts: artifactGlobs(spec),
            ...(spec.setup ? { setup: setupStep(record.workspace, spec) } : {}),
          }
        : {}),
    });
    // Not connected after all: the link's own close will detach it; until then it waits.
    if (!sent) this.logger.debug(`run for ${record.info.id} not sent: ${link.name} not connected`);
  }

  private requeue(record: TaskRecord, why: string): void {
    this.tasks.move(record.info.id, { phase: 'queued', since: Date.now(), reason: why });
    this.logger.info(`task ${this.describe(record)} queued again: ${why}`, {
      task: record.info.id,
    });
    this.scheduler.enqueue(record.info.id, record.where, record.info.group, {
      front: true,
      pack: record.spec.pack ?? false,
    });
    this.emit('task', record.info);
  }

  private finish(record: TaskRecord, status: FinalStatus, error: ConnectionError | null): void {
    this.tasks.move(record.info.id, { phase: 'final', status, endedAt: Date.now() });
    record.info.error = error;
    if (status === 'failed' || status === 'lost' || status === 'timed_out') {
      this.logger.info(`task ${this.describe(record)} ${status}`, {
        task: record.info.id,
        agent: record.info.agent,
        exitCode: record.info.exitCode,
        error,
      });
    }
    this.emit('task', record.info);
  }

  /** How the log names a task: its command, shortened, and its shard. */
  private describe(record: TaskRecord): string {
    const cmd =
      record.spec.command.length > 40
        ? `${record.spec.command.slice(0, 39)}…`
        : record.spec.command;
    return record.info.shard === null ? `"${cmd}"` : `"${cmd}" #${record.info.shard}`;
  }
}
