import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import type { StartedAgent } from './agentProcess';
import { startAgent } from './agentProcess';

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
export async function startNetnsAgent(options: NetnsAgentOptions): Promise<StartedAgent> {
  const { host, name } = options;
  const agent = await startAgent({
    keyFile: options.keyFile,
    name,
    bind: host.address,
    maxJobs: options.maxJobs ?? 1,
    mdns: true,
    wrap: ['ip', 'netns', 'exec', host.ns],
  });
  if (!agent.logs.some((r) => r.msg === 'advertising by mDNS')) {
    await agent.stop();
    throw new Error(`agent ${name} in ${host.ns} listens but did not say it advertises by mDNS`);
  }
  return agent;
}
