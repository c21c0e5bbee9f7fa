import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runOn, startAgent, tempDir } from '../helpers/agentProcess';
import { generateKey } from '../../shared/clusterKey';
import { pskClientOptions } from '../../shared/tlsPsk';

/** Open descriptors of a process. */
function fds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident memory of a process, in MiB. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) / 1024;
}

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('keyless floods against a real agent @integration', function () {
  this.timeout(120_000);
  const dir = tempDir();
  let keyFile: string;
  let agent: StartedAgent;

  before(async () => {
    keyFile = newKeyFile(dir.path).path;
    agent = await startAgent({ keyFile, name: 'flooded' });
  });
  after(async () => {
    await agent?.stop();
    dir.cleanup();
  });

  const legitRun = async (): Promise<number> => {
    const started = Date.now();
    const r = await runOn(agent.address, keyFile, ['--', 'echo served']);
    assert.equal(r.code, 0, `a legitimate run during the flood failed: ${r.stderr}`);
    assert.match(r.stdout, /served/);
    return Date.now() - started;
  };

  it('holds thousands of idle connections to bounded descriptors, serves runs throughout, and gives everything back', async () => {
    const pid = agent.proc.pid as number;
    const idleRun = await legitRun();
    const baseFds = fds(pid);
    const baseRss = rssMiB(pid);
    const ADDRESSES = 200;
    const PER_ADDRESS = 20;
    const FLOOD_MS = 9_000;
    const MAX_ATTEMPTS = 250_000;
    const open = new Set<Socket>();
    let attempts = 0;
    let flooding = true;
    const dialFrom = (address: string): void => {
      if (!flooding || attempts >= MAX_ATTEMPTS) return;
      attempts++;
      const s = connect({ host: '127.0.0.1', port: agent.port, localAddress: address });
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        setTimeout(() => dialFrom(address), 100);
      });
    };
    for (let a = 0; a < ADDRESSES; a++)
      for (let i = 0; i < PER_ADDRESS; i++) dialFrom(`127.0.${1 + (a >> 8)}.${1 + (a % 250)}`);

    let peakFds = 0;
    let peakRss = 0;
    let peakOpen = 0;
    const sampler = setInterval(() => {
      peakFds = Math.max(peakFds, fds(pid));
      peakRss = Math.max(peakRss, rssMiB(pid));
      peakOpen = Math.max(peakOpen, open.size);
    }, 100);
    const served: number[] = [];
    const floodEnd = Date.now() + FLOOD_MS;
    try {
      while (Date.now() < floodEnd) served.push(await legitRun());
    } finally {
      flooding = false;
      clearInterval(sampler);
      for (const s of open) s.destroy();
    }
    await until('the agent closing the flood', () => fds(pid) <= baseFds + 4, 20_000);
    const afterFds = fds(pid);
    // The agent releases what the flood grew a few seconds after it ends.
    await until(
      'the agent logging the end of the flood',
      () => agent.logs.some((l) => l.msg === 'a connection flood is over; memory released'),
      20_000,
    );
    // Freed pages leave the process a moment after the collection.
    await until('RSS coming back down', () => rssMiB(pid) < baseRss + 20, 5_000).catch(
      () => undefined,
    );
    const afterRss = rssMiB(pid);
    process.stdout.write(
      `      ${JSON.stringify(agent.logs.find((l) => l.msg === 'a connection flood is over; memory released'))}\n`,
    );
    process.stdout.write(
      `      flood: ${attempts} connection attempts from ${ADDRESSES} addresses, up to ${peakOpen} open at once on the client side\n` +
        `      agent descriptors: ${baseFds} before, ${peakFds} peak, ${afterFds} after\n` +
        `      agent RSS: ${baseRss.toFixed(1)} MiB before, ${peakRss.toFixed(1)} peak, ${afterRss.toFixed(1)} after\n` +
        `      legitimate runs served: ${served.length}, ms: ${served.join(', ')} (${idleRun} ms with no flood)\n`,
    );
    assert.ok(served.length >= 3, 'several runs were served during the flood');
    assert.ok(attempts >= 4000, `the flood made ${attempts} attempts`);
    // Bounded: the pending-handshake cap (512) plus sessions and the process's own.
    assert.ok(peakFds < baseFds + 512 + 50, `descriptors peaked at ${peakFds}`);
    assert.ok(Math.max(...served) < 5_000, `a run took ${Math.max(...served)} ms`);
    // Reported, and bounded generously: the unbounded agent reached 1.67 GB
    // for 20,000 connections and kept it. How much V8 gives back is its call.
    assert.ok(peakRss < baseRss + 250, `RSS peaked at ${peakRss.toFixed(1)} MiB`);
    assert.ok(afterRss <= peakRss, `RSS grew after the flood, to ${afterRss.toFixed(1)} MiB`);
  });

  it('backs off an address after repeated failed handshakes and logs them coalesced', async () => {
    const wrong = generateKey();
    const attempt = (): Promise<'handshake_failed' | 'refused' | 'connected'> =>
      new Promise((resolve) => {
        let greeted = false;
        const raw = connect({ host: '127.0.0.1', port: agent.port, localAddress: '127.0.9.9' });
        const s = tlsConnect({ socket: raw, ...pskClientOptions(wrong) });
        s.on('secureConnect', () => resolve('connected'));
        // A refused connection closes before the server says anything; a
        // failed handshake gets the server's TLS alert first.
        s.on('data', () => (greeted = true));
        s.on('error', (err: Error & { code?: string }) =>
          resolve(
            greeted || /alert|psk|mac|handshake/i.test(err.message)
              ? 'handshake_failed'
              : 'refused',
          ),
        );
        s.on('close', () => resolve('refused'));
      });
    const outcomes: string[] = [];
    for (let i = 0; i < 200; i++) outcomes.push(await attempt());
    const failed = outcomes.filter((o) => o === 'handshake_failed').length;
    const refused = outcomes.filter((o) => o === 'refused').length;
    process.stdout.write(
      `      200 wrong-key dials from one address: ${failed} reached a handshake, ${refused} were turned away at once\n`,
    );
    assert.equal(outcomes.includes('connected'), false);
    assert.ok(refused >= 150, `only ${refused} of 200 were refused by the back-off`);
    // A legitimate run from another address is not held back.
    await legitRun();
    const lines = (): Array<Record<string, unknown>> =>
      agent.logs.filter((l) => l.peer === '127.0.9.9');
    assert.ok(
      lines().length <= 10,
      `${lines().length} log lines for 200 failed handshakes: ${JSON.stringify(lines().slice(0, 12))}`,
    );
    assert.ok(lines().some((l) => /does not hold this cluster key/.test(String(l.msg))));
    assert.ok(lines().some((l) => /^backing off 127\.0\.9\.9/.test(String(l.msg))));
    await agent.stop();
    const summary = lines().find((l) => /failed handshakes from 127\.0\.9\.9/.test(String(l.msg)));
    assert.ok(summary, 'the agent sums the failures up in one line');
    assert.match(
      String(summary.msg),
      /^\d+ failed handshakes from 127\.0\.9\.9 in the last minute, \d+ connections refused while backed off$/,
    );
  });
});
