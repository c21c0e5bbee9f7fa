import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import type { ConnectionError } from '../../shared/frameConnection';
import { ErrorCode } from '../../shared/errors';
import { generateKey } from '../../shared/clusterKey';
import type {
  AgentBound,
  AgentLoad,
  DispatcherBound,
  HeldTask,
  HelloMessage,
} from '../../shared/protocol';
import { PROTOCOL_VERSION } from '../../shared/protocol';
import type { AgentInfo, AgentStatus, TaskInfo } from '../../shared/rpc';
import type { Link, LinkEvents, LinkOptions } from './agentLink';
import { Dispatcher } from './dispatcher';
import { formatAddress } from './transport';

/**
 * A link with no socket: the test plays the agent, saying hello, sending
 * frames and dropping the connection, and reads what the dispatcher sent.
 */
class FakeLink implements Link {
  status: AgentStatus = 'connecting';
  agentHello: HelloMessage | undefined;
  lastError: ConnectionError | undefined;
  load: AgentLoad | undefined;
  label: string | undefined;
  urgent = false;
  readonly sent: AgentBound[] = [];
  readonly settled = Promise.resolve();
  readonly frames = undefined;

  constructor(
    readonly options: LinkOptions,
    private readonly events: LinkEvents,
  ) {}

  get key(): string {
    return formatAddress(this.options.address);
  }
  get name(): string {
    return this.agentHello?.name ?? this.key;
  }
  get isOnline(): boolean {
    return this.status === 'online' || this.status === 'busy' || this.status === 'resting';
  }

  /** The agent answers hello (with the tasks it holds for this dispatcher). */
  up(name: string, maxJobs = 1, tasks: HeldTask[] = []): void {
    this.agentHello = {
      t: 'hello',
      protocol: PROTOCOL_VERSION,
      role: 'agent',
      id: `id-${name}`,
      name,
      version: 'test',
      os: 'linux',
      arch: 'x64',
      cpus: 1,
      memory: 1,
      maxJobs,
      running: 0,
      tags: [],
      tasks,
    };
    this.load = {
      maxJobs,
      running: 0,
      queued: 0,
      yoursRunning: 0,
      yoursQueued: 0,
      loadAvg: 0,
      freeMemory: 1,
      battery: null,
      resting: false,
      draining: false,
    };
    this.status = 'online';
    this.lastError = undefined;
    this.events.changed(this);
  }

  /** The connection drops (a cut link), or the port refuses (the process is gone). */
  down(code: string = ErrorCode.Timeout): void {
    this.status = 'offline';
    this.lastError = { code, message: code };
    this.load = undefined;
    this.events.down(this, this.lastError);
    this.events.changed(this);
  }

  deliver(message: DispatcherBound): void {
    this.events.message(this, message);
  }

  /** The run frames sent so far, by wire id. */
  runs(): string[] {
    return this.sent.flatMap((m) => (m.t === 'run' ? [m.task] : []));
  }

  start(): void {}
  send(message: AgentBound): boolean {
    if (!this.isOnline) return false;
    this.sent.push(message);
    return true;
  }
  close(): void {}
  pause(): void {}
  resume(): void {}
  reconnectNow(): void {}
  markRefused(status: AgentStatus, error: ConnectionError): void {
    this.status = status;
    this.lastError = error;
  }
  info(): AgentInfo {
    return {
      id: this.agentHello?.id ?? this.key,
      name: this.name,
      address: this.key,
      status: this.status,
      version: null,
      protocol: null,
      os: null,
      arch: null,
      cpus: null,
      memory: null,
      maxJobs: this.load?.maxJobs ?? 0,
      running: 0,
      queued: 0,
      loadAvg: null,
      freeMemory: null,
      battery: null,
      resting: false,
      label: this.label ?? this.name,
      tags: [],
      source: 'listed',
      lastError: null,
    };
  }
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

function setup(options: { lostAfterMs?: number; graceMs?: number; agents?: string[] } = {}) {
  const links = new Map<string, FakeLink>();
  const dispatcher = new Dispatcher({
    key: generateKey(),
    agents: options.agents ?? ['10.0.0.1:7879', '10.0.0.2:7879'],
    lostAfterMs: options.lostAfterMs ?? 40,
    graceMs: options.graceMs ?? 10_000,
    id: randomBytes(4).toString('hex'),
    createLink: (o, e) => {
      const link = new FakeLink(o, e);
      links.set(link.key, link);
      return link;
    },
  });
  const seen: TaskInfo[] = [];
  dispatcher.on('task', (t) => seen.push({ ...t }));
  dispatcher.start();
  const [a, b] = [...links.values()] as [FakeLink, FakeLink];
  return { dispatcher, a, b, seen, latest: (id: string) => dispatcher.tasks.get(id)!.info };
}

describe('dispatcher policy, with fake links', () => {
  it('detaches a task when its link drops, and reattaches from the last output seen', async () => {
    const { dispatcher, a, latest } = setup({ agents: ['10.0.0.1:7879'] });
    a.up('pi');
    const [task] = dispatcher.submit({ command: 'make' });
    const id = task!.id;
    assert.deepEqual(a.runs(), [id]);
    a.deliver({ t: 'started', task: id, pid: 1 });
    const shown: string[] = [];
    dispatcher.on('output', (o) => shown.push(Buffer.from(o.data).toString()));
    a.deliver({ t: 'output', task: id, seq: 0, stream: 'stdout', data: Buffer.from('a') });
    a.deliver({ t: 'output', task: id, seq: 1, stream: 'stdout', data: Buffer.from('b') });
    a.down();
    assert.equal(latest(id).phase, 'detached');
    assert.equal(latest(id).status, 'running');
    a.up('pi', 1, [{ task: id, state: 'running', seq: 3 }]);
    assert.deepEqual(a.sent.at(-1), { t: 'attach', task: id, fromSeq: 2 });
    assert.equal(latest(id).phase, 'running');
    // Replayed chunks already seen are not shown twice.
    a.deliver({ t: 'output', task: id, seq: 1, stream: 'stdout', data: Buffer.from('b') });
    a.deliver({ t: 'output', task: id, seq: 2, stream: 'stdout', data: Buffer.from('c') });
    a.deliver({
      t: 'exit',
      task: id,
      outcome: 'completed',
      exitCode: 0,
      signal: null,
      durationMs: 5,
      running: 0,
    });
    assert.equal(shown.join(''), 'abc');
    assert.equal(latest(id).status, 'completed');
    assert.equal(latest(id).attempts, 1);
    assert.deepEqual(a.sent.at(-1), { t: 'release', task: id });
    dispatcher.close();
  });

  it('after lost-after runs the task on another agent, and cancels the abandoned attempt when its agent returns', async () => {
    const { dispatcher, a, b, latest, seen } = setup();
    a.up('pi');
    const [task] = dispatcher.submit({ command: 'make', target: { kind: 'agent', name: 'pi' } });
    const id = task!.id;
    // Let it be placed on pi, then let desk and pi both take work under any name.
    a.deliver({ t: 'started', task: id, pid: 1 });
    dispatcher.tasks.get(id)!.where = { kind: 'any' };
    b.up('desk');
    a.down();
    await tick(80);
    const rerun = `${id}.r2`;
    assert.deepEqual(b.runs(), [rerun]);
    assert.equal(latest(id).agent, 'desk');
    assert.equal(latest(id).attempts, 2);
    assert.equal(latest(id).previousAgent, 'pi');
    assert.ok(seen.some((t) => t.phase === 'detached'));
    // Output of the abandoned attempt, arriving late, is never shown.
    const shown: string[] = [];
    dispatcher.on('output', (o) => shown.push(Buffer.from(o.data).toString()));
    a.up('pi', 1, [{ task: id, state: 'running', seq: 5 }]);
    a.deliver({ t: 'output', task: id, seq: 4, stream: 'stdout', data: Buffer.from('stale') });
    assert.deepEqual(a.sent.slice(-2), [
      { t: 'cancel', task: id },
      { t: 'release', task: id },
    ]);
    b.deliver({ t: 'started', task: rerun, pid: 2 });
    b.deliver({ t: 'output', task: rerun, seq: 0, stream: 'stdout', data: Buffer.from('fresh') });
    b.deliver({
      t: 'exit',
      task: rerun,
      outcome: 'completed',
      exitCode: 0,
      signal: null,
      durationMs: 1,
      running: 0,
    });
    assert.deepEqual(shown, ['fresh']);
    assert.equal(latest(id).status, 'completed');
    dispatcher.close();
  });

  it('keeps waiting past lost-after while no other agent can take the task, and runs it on the next to come', async () => {
    const { dispatcher, a, b, latest } = setup();
    a.up('pi');
    const [task] = dispatcher.submit({ command: 'make' });
    const id = task!.id;
    a.down();
    await tick(80);
    assert.equal(latest(id).phase, 'detached');
    b.up('desk');
    assert.deepEqual(b.runs(), [`${id}.r2`]);
    dispatcher.close();
  });

  it('treats an agent whose port refuses as gone at once, without waiting out lost-after', () => {
    const { dispatcher, a, b, latest } = setup({ lostAfterMs: 60_000 });
    a.up('pi');
    b.up('desk');
    b.down(); // desk busy elsewhere: make pi take it
    const [task] = dispatcher.submit({ command: 'make' });
    const id = task!.id;
    b.up('desk');
    a.down(ErrorCode.AgentDown);
    assert.equal(latest(id).agent, 'desk');
    assert.deepEqual(b.runs(), [`${id}.r2`]);
    dispatcher.close();
  });

  it('is lost when the grace passes with no retries left, and says why', async () => {
    const { dispatcher, a, latest } = setup({ graceMs: 60, agents: ['10.0.0.1:7879'] });
    a.up('pi');
    const [task] = dispatcher.submit({ command: 'make', lostRetries: 0 });
    a.down();
    await tick(120);
    assert.equal(latest(task!.id).status, 'lost');
    assert.match(latest(task!.id).error?.message ?? '', /did not come back/);
    dispatcher.close();
  });

  it('settles a task lost while its artifacts came back as completed with an error, never a rerun', () => {
    const { dispatcher, a, b, latest } = setup();
    a.up('pi');
    b.up('desk');
    const [task] = dispatcher.submit({ command: 'make' });
    const id = task!.id;
    const link = [a, b].find((l) => l.runs().includes(id))!;
    const other = link === a ? b : a;
    // Artifacts need a workspace: give the task one (a folder that exists).
    dispatcher.tasks.get(id)!.workspace = {
      id: 'ws',
      root: tmpdir(),
      entries: [],
      digest: 'd',
      preserve: [],
    } as never;
    link.deliver({ t: 'started', task: id, pid: 1 });
    link.deliver({
      t: 'exit',
      task: id,
      outcome: 'completed',
      exitCode: 0,
      signal: null,
      durationMs: 1,
      running: 0,
      artifacts: [{ path: 'out.txt', size: 1, mode: 0o644, hash: 'a'.repeat(64) }],
    });
    assert.equal(latest(id).phase, 'collecting');
    link.down();
    assert.equal(latest(id).status, 'completed');
    assert.equal(latest(id).error?.code, ErrorCode.Unreachable);
    assert.deepEqual(other.runs(), []);
    dispatcher.close();
  });

  it('sends a task refused by a resting agent elsewhere instead of failing it', () => {
    const { dispatcher, a, b, latest } = setup();
    a.up('pi');
    const [task] = dispatcher.submit({ command: 'make' });
    const id = task!.id;
    b.up('desk');
    a.deliver({ t: 'refused', task: id, code: ErrorCode.Resting, message: 'battery low' });
    assert.equal(latest(id).agent, 'desk');
    assert.equal(latest(id).retryReason, 'agent pi is resting');
    assert.deepEqual(b.runs(), [`${id}.r2`]);
    dispatcher.close();
  });
});
