import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CliResult, StartedAgent } from '../helpers/agentProcess';
import { cleanOctaskEnv, newKeyFile, runCli, startAgent, tempDir } from '../helpers/agentProcess';
import type { TwoHostLan } from '../helpers/netns';
import { assertCanMakeNamespaces, createTwoHostLan, removeStaleNamespaces } from '../helpers/netns';
import type { AgentInfo } from '../../shared/rpc';

/*
 * Termux on recent Android: os.networkInterfaces() throws (errno 13), and
 * with mDNS on the agent used to exit right after "listening". A preload
 * makes it throw here; the agent runs with mDNS on in a namespace of its own
 * (host A), so its multicast never reaches a real network, and the CLI on
 * host B reaches it by address, as a phone's user must.
 */

const NS_PREFIX = 'octask-small';

/** Loaded with `node -r`: when OCTASK_TEST_IFACES says so, networkInterfaces() fails as on Termux. */
const PRELOAD = `
const os = require('os');
const real = os.networkInterfaces;
const mode = process.env.OCTASK_TEST_IFACES || '';
let calls = 0;
os.networkInterfaces = function () {
  calls++;
  const fail =
    mode === 'always' ||
    (mode === 'after-first' && calls > 1) ||
    (mode.startsWith('/') && require('fs').existsSync(mode));
  if (fail) {
    const err = new Error('A system error occurred: uv_interface_addresses returned Unknown system error 13 (Unknown system error 13)');
    err.code = 'ERR_SYSTEM_ERROR';
    err.errno = 13;
    err.syscall = 'uv_interface_addresses';
    throw err;
  }
  return real.apply(this, arguments);
};
`;

const ADVERTISE_FAILED =
  /^mDNS advertising failed, so dispatchers will not find this device by mDNS: list it by address/;

async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

function describeRun(r: CliResult): string {
  return `exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

describe('small devices: mDNS trouble never takes the agent down @integration', function () {
  this.timeout(60_000);
  let lan: TwoHostLan | undefined;
  let dir: { path: string; cleanup(): void } | undefined;
  let keyFile = '';
  let preload = '';
  const env = cleanOctaskEnv();

  before(async () => {
    assertCanMakeNamespaces();
    await removeStaleNamespaces(new RegExp(`^${NS_PREFIX}-(\\d+)-[ab]$`));
    dir = tempDir('octask-small-mdns-');
    keyFile = newKeyFile(dir.path).path;
    preload = join(dir.path, 'failing-interfaces.js');
    writeFileSync(preload, PRELOAD);
    lan = await createTwoHostLan({
      prefix: `${NS_PREFIX}-${process.pid}`,
      ifaceStem: `os${process.pid}`,
      addressA: '198.51.100.21',
      addressB: '198.51.100.22',
    });
  });

  after(async () => {
    try {
      await lan?.destroy();
    } finally {
      dir?.cleanup();
    }
  });

  /** An agent on host A with mDNS on, its interfaces failing as OCTASK_TEST_IFACES says. */
  const startFailingAgent = (mode: string, name: string): Promise<StartedAgent> => {
    if (!lan) throw new Error('the LAN was not set up');
    return startAgent({
      keyFile,
      name,
      bind: lan.a.address,
      mdns: true,
      wrap: lan.a.wrap,
      nodeArgs: ['-r', preload],
      // Debug shows each background retry.
      args: ['--log-level', 'debug'],
      env: { ...env, OCTASK_TEST_IFACES: mode },
    });
  };

  const runOnB = (args: string[]): Promise<CliResult> => {
    if (!lan) throw new Error('the LAN was not set up');
    const [command, ...rest] = args;
    return runCli([command ?? '', '--key-file', keyFile, ...rest], { wrap: lan.b.wrap, env });
  };

  const warnings = (agent: StartedAgent): Array<Record<string, unknown>> =>
    agent.logs.filter((l) => l.level === 'warn' && ADVERTISE_FAILED.test(String(l.msg)));

  it('interfaces that always throw (Termux): one warning, retries in the background, and the agent serves a run by address', async () => {
    const agent = await startFailingAgent('always', 'termux');
    try {
      assert.ok(
        await eventually(() => warnings(agent).length > 0, 5000),
        'no warning that mDNS failed',
      );
      const r = await runOnB(['run', '--no-mdns', '--agent', agent.address, '--', 'echo served']);
      assert.equal(r.code, 0, describeRun(r));
      assert.equal(r.stdout, 'served\n');
      // The first retry is 2 s after the failure; it fails too, quietly.
      assert.ok(
        await eventually(
          () => agent.logs.some((l) => l.msg === 'mDNS advertising failed again'),
          10_000,
        ),
        'mDNS was not retried',
      );
      assert.equal(agent.proc.exitCode, null, 'the agent exited');
      assert.equal(warnings(agent).length, 1, 'warned more than once');
      const warning = warnings(agent)[0] as { err?: { code?: string } };
      assert.equal(warning.err?.code, 'ERR_SYSTEM_ERROR');
      assert.ok(!agent.logs.some((l) => l.msg === 'advertising by mDNS'));
      agent.proc.kill('SIGTERM');
      assert.equal(await agent.exited, 0);
    } finally {
      await agent.stop();
    }
  });

  it('a throw inside the mDNS library after it started (its socket handler and timers) is caught too', async () => {
    // The agent's own check passes; every later call, from multicast-dns's
    // 'listening' handler and bonjour's announce, throws.
    const agent = await startFailingAgent('after-first', 'flaky');
    try {
      assert.ok(
        await eventually(() => warnings(agent).length > 0, 5000),
        'no warning that mDNS failed',
      );
      const r = await runOnB(['run', '--no-mdns', '--agent', agent.address, '--', 'echo served']);
      assert.equal(r.code, 0, describeRun(r));
      assert.equal(r.stdout, 'served\n');
      assert.equal(agent.proc.exitCode, null, 'the agent exited');
      assert.equal(warnings(agent).length, 1);
    } finally {
      await agent.stop();
    }
  });

  it('once the interfaces can be read again, the agent advertises and mDNS finds it', async () => {
    if (!dir) throw new Error('no temp dir');
    const flag = join(dir.path, 'interfaces-fail');
    writeFileSync(flag, '');
    const agent = await startFailingAgent(flag, 'recovers');
    try {
      assert.ok(await eventually(() => warnings(agent).length > 0, 5000), 'no warning');
      rmSync(flag);
      assert.ok(!existsSync(flag));
      assert.ok(
        await eventually(
          () => agent.logs.some((l) => l.msg === 'advertising by mDNS' && l.afterFailures),
          15_000,
        ),
        'the agent did not start advertising after the interfaces came back',
      );
      // Host B, with no address given, finds it by browsing.
      const r = await runOnB(['agents', '--json']);
      const agents = (JSON.parse(r.stdout) as { agents: AgentInfo[] }).agents;
      const found = agents.find((a) => a.name === 'recovers');
      assert.ok(found, `mDNS did not find the agent: ${describeRun(r)}`);
      assert.equal(found.status, 'online');
      assert.equal(found.source, 'mdns');
    } finally {
      await agent.stop();
    }
  });
});
