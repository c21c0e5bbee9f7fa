import { strict as assert } from 'node:assert';
import type { CliResult, StartedAgent } from '../helpers/agentProcess';
import { cleanOctaskEnv, newKeyFile, runCli, tempDir } from '../helpers/agentProcess';
import type { TwoHostLan } from '../helpers/netns';
import {
  assertCanMakeNamespaces,
  createTwoHostLan,
  removeStaleNamespaces,
  startNetnsAgent,
} from '../helpers/netns';
import type { AgentInfo } from '../../shared/rpc';

/*
 * Two simulated hosts on one LAN: host A (198.51.100.1) runs octask-agent with
 * mDNS on; host B (198.51.100.2) runs the octask CLI with no --agent, so the
 * only way it can find the agent is by browsing _octask._tcp.
 */

const ADDRESS_A = '198.51.100.1';
const ADDRESS_B = '198.51.100.2';
const NS_PREFIX = 'octask-mdns';

/** `octask agents --json` output, checked enough to index it safely. */
function parseAgents(result: CliResult): AgentInfo[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout);
  } catch {
    assert.fail(
      `octask agents --json printed no JSON (exit ${String(result.code)})\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
    );
  }
  const agents = (parsed as { agents?: unknown } | null)?.agents;
  assert.ok(Array.isArray(agents), `no "agents" array in ${result.stdout}`);
  return agents as AgentInfo[];
}

/** Polls `check` every 50 ms until it holds or `ms` pass; returns whether it held. */
async function eventually(check: () => boolean, ms = 1000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

function describeRun(result: CliResult): string {
  return `exit ${String(result.code)}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
}

describe('mDNS discovery across hosts @integration', function () {
  let lan: TwoHostLan | undefined;
  let dir: { path: string; cleanup(): void } | undefined;
  let clusterKey: { path: string; key: { id: string } };
  const env = cleanOctaskEnv();

  /** Runs the octask CLI on host B with the cluster key, never naming an agent. */
  const cliOnB = (args: string[], keyFile = clusterKey.path): Promise<CliResult> => {
    if (!lan) throw new Error('the LAN was not set up');
    assert.ok(!args.includes('--agent'), 'these tests must find agents by mDNS only');
    const [command, ...rest] = args;
    return runCli([command ?? '', '--key-file', keyFile, ...rest], { wrap: lan.b.wrap, env });
  };

  before(async function () {
    assertCanMakeNamespaces();
    await removeStaleNamespaces(new RegExp(`^${NS_PREFIX}-(\\d+)-[ab]$`));
    dir = tempDir('octask-mdns-');
    clusterKey = newKeyFile(dir.path, 'cluster-key');
    lan = await createTwoHostLan({
      prefix: `${NS_PREFIX}-${process.pid}`,
      ifaceStem: `om${process.pid}`,
      addressA: ADDRESS_A,
      addressB: ADDRESS_B,
    });
  });

  after(async function () {
    try {
      await lan?.destroy();
    } finally {
      dir?.cleanup();
    }
  });

  describe('an agent on host A holding the same cluster key', function () {
    let agent: StartedAgent | undefined;

    before(async function () {
      if (!lan) throw new Error('the LAN was not set up');
      agent = await startNetnsAgent({
        host: lan.a,
        keyFile: clusterKey.path,
        name: `alpha-${process.pid}`,
      });
    });

    after(async function () {
      await agent?.stop();
    });

    it('is listed online by `octask agents --json` on host B, found by mDNS alone', async function () {
      assert.ok(agent);
      const result = await cliOnB(['agents', '--json']);
      assert.equal(result.code, 0, describeRun(result));
      const agents = parseAgents(result);
      assert.equal(
        agents.length,
        1,
        `expected exactly the one agent on the LAN, got ${result.stdout}`,
      );
      const [found] = agents;
      assert.ok(found);
      assert.equal(found.name, agent.name);
      assert.equal(found.status, 'online');
      assert.equal(found.address, `${ADDRESS_A}:${agent.port}`);
      assert.equal(found.source, 'mdns');
      assert.equal(found.lastError, null);
      assert.equal(found.maxJobs, 1);
      // The connection really crossed the veth from host B.
      const started = agent;
      const connected = (): string[] =>
        started.logs.filter((r) => r.msg === 'dispatcher connected').map((r) => String(r.peer));
      assert.ok(
        await eventually(() => connected().some((peer) => peer.startsWith(`${ADDRESS_B}:`))),
        `the agent saw no dispatcher from ${ADDRESS_B}; it logged connections from ${JSON.stringify(connected())}`,
      );
    });

    it('is not found by the same command with --no-mdns (the control)', async function () {
      const result = await cliOnB(['agents', '--json', '--no-mdns']);
      assert.equal(result.code, 125, describeRun(result));
      assert.deepEqual(parseAgents(result), []);
    });

    it('runs `octask run` from host B with no --agent', async function () {
      assert.ok(agent);
      const result = await cliOnB(['run', '--', 'echo hi from $OCTASK_AGENT_NAME']);
      assert.equal(result.code, 0, describeRun(result));
      assert.ok(result.stdout.includes(`hi from ${agent.name}`), describeRun(result));
    });
  });

  describe('an agent on host A holding a different cluster key', function () {
    let agent: StartedAgent | undefined;
    let otherKey: { path: string; key: { id: string } };

    before(async function () {
      if (!lan || !dir) throw new Error('the LAN was not set up');
      otherKey = newKeyFile(dir.path, 'other-cluster-key');
      assert.notEqual(otherKey.key.id, clusterKey.key.id);
      agent = await startNetnsAgent({
        host: lan.a,
        keyFile: otherKey.path,
        name: `beta-${process.pid}`,
      });
    });

    after(async function () {
      await agent?.stop();
    });

    it('is reported wrong_key by `octask agents --json` on host B', async function () {
      assert.ok(agent);
      const result = await cliOnB(['agents', '--json']);
      // None online: agents exits 125.
      assert.equal(result.code, 125, describeRun(result));
      const agents = parseAgents(result);
      assert.equal(
        agents.length,
        1,
        `expected exactly the one agent on the LAN, got ${result.stdout}`,
      );
      const [found] = agents;
      assert.ok(found);
      assert.equal(found.status, 'wrong_key');
      assert.equal(found.address, `${ADDRESS_A}:${agent.port}`);
      assert.equal(found.source, 'mdns');
      assert.equal(found.lastError?.code, 'E_WRONG_KEY');
    });

    it('is judged from the key id in its TXT record, without dialling it', async function () {
      assert.ok(agent);
      const rejectedBefore = agent.logs.filter(
        (r) => r.msg === 'rejected a connection: the peer does not hold this cluster key',
      ).length;
      const result = await cliOnB(['agents', '--json']);
      assert.equal(result.code, 125, describeRun(result));
      const [found] = parseAgents(result);
      assert.equal(found?.status, 'wrong_key', result.stdout);
      // Give the agent's log line (if any) time to arrive through the pipe.
      await new Promise((r) => setTimeout(r, 300));
      const rejected = agent.logs.filter(
        (r) => r.msg === 'rejected a connection: the peer does not hold this cluster key',
      );
      const problems: string[] = [];
      if (rejected.length > rejectedBefore) {
        problems.push(
          `the dispatcher dialled the agent anyway: it logged ${JSON.stringify(rejected.slice(rejectedBefore))}`,
        );
      }
      const message = found?.lastError?.message ?? '';
      if (!message.includes(otherKey.key.id)) {
        problems.push(
          `the error does not name the key id the agent advertises (${otherKey.key.id}): ${JSON.stringify(message)}`,
        );
      }
      assert.deepEqual(problems, []);
    });

    it('makes `octask run` on host B exit 125 with a message about the key', async function () {
      const result = await cliOnB(['run', '--', 'echo hi from $OCTASK_AGENT_NAME']);
      assert.equal(result.code, 125, describeRun(result));
      assert.match(result.stderr, /E_WRONG_KEY/, describeRun(result));
      assert.match(result.stderr, /\bkey\b/i, describeRun(result));
      assert.ok(
        !result.stdout.includes('hi from'),
        `the command ran anyway: ${describeRun(result)}`,
      );
    });
  });
});
