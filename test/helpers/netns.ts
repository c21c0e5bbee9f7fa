import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { StartedAgent } from './agentProcess';
import { AGENT_BIN } from './agentProcess';

/*
 * A simulated LAN of two hosts inside this machine: two Linux network
 * namespaces joined by a veth pair, each with a multicast route so that mDNS
 * works between them. Needs root (CAP_NET_ADMIN). Nothing here talks to any
 * network but the one it builds.
 */

const execFileP = promisify(execFile);

/** The only addresses these hosts may have (TEST-NET-2, RFC 5737). */
const TEST_NET = /^198\.51\.100\.(\d{1,3})$/;

/** Runs `ip ARGS...`; rejects with ip's own complaint. */
export async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP('ip', args, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string; code?: string | number };
    const why =
      e.code === 'ENOENT'
        ? 'the ip command (iproute2) is not installed'
        : (e.stderr ?? '').trim() || e.message;
    throw new Error(`ip ${args.join(' ')} failed: ${why}`);
  }
}

/**
 * Throws (so the suite fails, loudly) unless this process can make network
 * namespaces. These tests must never skip or pass without having run.
 */
export function assertCanMakeNamespaces(): void {
  if (process.platform !== 'linux') {
    throw new Error(
      `the network-namespace tests need Linux, not ${process.platform}; they do not skip`,
    );
  }
  const uid = process.getuid?.();
  if (uid !== 0) {
    throw new Error(
      `the network-namespace tests need root (CAP_NET_ADMIN to run "ip netns add"); this process runs as uid ${String(uid)}. ` +
        'Run them as root; they fail rather than skip.',
    );
  }
}

export interface NetnsHost {
  /** The namespace's name (`ip netns exec NAME ...`). */
  ns: string;
  /** Its end of the veth pair. */
  iface: string;
  /** Its IPv4 address on the veth (no prefix length). */
  address: string;
  /** Prefix for a command to run it on this host (`wrap` of runCli/startAgent). */
  wrap: string[];
}

export interface TwoHostLan {
  a: NetnsHost;
  b: NetnsHost;
  /** Kills whatever still runs in the namespaces and deletes them; safe to call twice. */
  destroy(): Promise<void>;
}

export interface TwoHostLanOptions {
  /** Unique per run; include process.pid. Namespaces are PREFIX-a and PREFIX-b. */
  prefix: string;
  /** Interface name stem, at most 13 characters; the veth ends are STEM + a / b. */
  ifaceStem: string;
  addressA: string;
  addressB: string;
}

/** Builds two namespaces joined by a veth pair on a /24, lo up, multicast routed. */
export async function createTwoHostLan(options: TwoHostLanOptions): Promise<TwoHostLan> {
  for (const address of [options.addressA, options.addressB]) {
    const m = TEST_NET.exec(address);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 254)
      throw new Error(`test hosts must use 198.51.100.1-254, not ${address}`);
  }
  if (options.ifaceStem.length > 13 || !/^[A-Za-z0-9-]+$/.test(options.ifaceStem)) {
    throw new Error(
      `interface stem ${JSON.stringify(options.ifaceStem)} must be 1-13 of A-Z a-z 0-9 -`,
    );
  }
  const host = (suffix: 'a' | 'b', address: string): NetnsHost => {
    const ns = `${options.prefix}-${suffix}`;
    return {
      ns,
      iface: `${options.ifaceStem}${suffix}`,
      address,
      wrap: ['ip', 'netns', 'exec', ns],
    };
  };
  const a = host('a', options.addressA);
  const b = host('b', options.addressB);

  const made: string[] = [];
  let destroyed = false;
  // Last resort if the process exits before the after hook ran.
  const onExit = (): void => {
    for (const ns of made) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone, or nothing more can be done while exiting
      }
    }
  };
  process.once('exit', onExit);

  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    process.off('exit', onExit);
    const errors: string[] = [];
    for (const ns of [...made].reverse()) {
      // Anything still running in a namespace we made was started by this test.
      try {
        const pids = (await ip(['netns', 'pids', ns])).split(/\s+/).filter(Boolean).map(Number);
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // exited meanwhile
          }
        }
      } catch (err) {
        errors.push((err as Error).message);
      }
      try {
        await ip(['netns', 'del', ns]);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    const left = (await ip(['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '');
    const stuck = made.filter((ns) => left.includes(ns));
    if (stuck.length > 0)
      errors.push(`namespaces still present after cleanup: ${stuck.join(', ')}`);
    made.length = 0;
    if (errors.length > 0)
      throw new Error(`network namespace cleanup failed:\n  ${errors.join('\n  ')}`);
  };

  try {
    for (const h of [a, b]) {
      await ip(['netns', 'add', h.ns]);
      made.push(h.ns);
    }
    // Made directly inside the namespaces: nothing ever appears in the host's own namespace.
    await ip([
      'link',
      'add',
      a.iface,
      'netns',
      a.ns,
      'type',
      'veth',
      'peer',
      'name',
      b.iface,
      'netns',
      b.ns,
    ]);
    for (const h of [a, b]) {
      await ip(['-n', h.ns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', h.iface]);
      await ip(['-n', h.ns, 'link', 'set', h.iface, 'up']);
      // mDNS (224.0.0.251) needs a multicast route; a namespace has no default route.
      await ip(['-n', h.ns, 'route', 'add', '224.0.0.0/4', 'dev', h.iface]);
    }
    for (const h of [a, b]) {
      const link = await ip(['-n', h.ns, '-o', 'link', 'show', 'dev', h.iface]);
      if (!/[<,]MULTICAST[,>]/.test(link))
        throw new Error(`${h.ns}/${h.iface} has no MULTICAST flag: ${link.trim()}`);
    }
  } catch (err) {
    try {
      await destroy();
    } catch (cleanupErr) {
      throw new Error(`${(err as Error).message}\n(and then: ${(cleanupErr as Error).message})`);
    }
    throw err;
  }
  return { a, b, destroy };
}

/**
 * Deletes namespaces left by an earlier run of the same suite that died
 * without cleaning up: names matching `pattern` whose first group is the pid
 * of a process that no longer exists. Returns the names removed.
 */
export async function removeStaleNamespaces(pattern: RegExp): Promise<string[]> {
  const removed: string[] = [];
  for (const line of (await ip(['netns', 'list'])).split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    const owner = Number(pattern.exec(ns)?.[1] ?? NaN);
    if (!Number.isInteger(owner) || owner === process.pid || isAlive(owner)) continue;
    const pids = (await ip(['netns', 'pids', ns])).split(/\s+/).filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    await ip(['netns', 'del', ns]);
    removed.push(ns);
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Environment with every OCTASK_* variable of this process blanked, so the caller's shell cannot steer the test. */
export function cleanOctaskEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of Object.keys(process.env)) if (name.startsWith('OCTASK_')) env[name] = '';
  return env;
}

export interface NetnsAgentOptions {
  host: NetnsHost;
  keyFile: string;
  name: string;
  maxJobs?: number;
}

/**
 * Starts `octask-agent` inside a namespace, bound to the host's address on
 * port 0, WITH mDNS advertising (unlike startAgent, which always passes
 * --no-mdns). Resolves once it listens and has said it advertises.
 */
export function startNetnsAgent(options: NetnsAgentOptions): Promise<StartedAgent> {
  const { host, name } = options;
  const workdir = mkdtempSync(join(tmpdir(), `octask-${name}-`));
  const args = [
    'netns',
    'exec',
    host.ns,
    process.execPath,
    AGENT_BIN,
    '--name',
    name,
    '--bind',
    host.address,
    '--port',
    '0',
    '--key-file',
    options.keyFile,
    '--workdir',
    workdir,
    '--max-jobs',
    String(options.maxJobs ?? 1),
    '--kill-grace',
    '1',
  ];
  const proc = spawn('ip', args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...cleanOctaskEnv() },
  });
  const logs: Array<Record<string, unknown>> = [];
  const rawLines: string[] = [];
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(workdir, { recursive: true, force: true });
  };
  return new Promise((resolvePromise, reject) => {
    let done = false;
    const fail = (message: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void stop().then(() => reject(new Error(`${message}; its stderr:\n${rawLines.join('\n')}`)));
    };
    const timer = setTimeout(
      () => fail(`agent ${name} in ${host.ns} did not start within 15 s`),
      15_000,
    );
    proc.once('error', (err) =>
      fail(`cannot spawn ip netns exec for agent ${name}: ${err.message}`),
    );
    void exited.then((code) =>
      fail(`agent ${name} in ${host.ns} exited with ${String(code)} before listening`),
    );
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      rawLines.push(line);
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(record);
      if (record.msg !== 'listening' || done) return;
      if (!logs.some((r) => r.msg === 'advertising by mDNS')) {
        fail(`agent ${name} listens but did not say it advertises by mDNS`);
        return;
      }
      done = true;
      clearTimeout(timer);
      const port = record.port as number;
      resolvePromise({
        proc,
        port,
        name,
        address: `${host.address}:${port}`,
        workdir,
        logs,
        exited,
        stop,
      });
    });
  });
}
