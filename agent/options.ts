import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import type { LogLevel } from '../shared/logger';
import { LOG_LEVELS } from '../shared/logger';
import { DEFAULT_AGENT_PORT, HEARTBEAT_MS } from '../shared/protocol';
import { defaultKeyFile } from '../shared/clusterKey';
import { defaultShell } from './shell';
import type { CpuSource } from './cpuCount';
import { countCpus } from './cpuCount';
// Not node:util's: that one is missing before Node 18.3.
import { parseArgs } from './flags';

export interface AgentOptions {
  name: string;
  /** Whether --name or OCTASK_NAME set the name (a paired agent takes its pairing's). */
  nameGiven: boolean;
  bind: string;
  port: number;
  maxJobs: number;
  tags: string[];
  keyFile: string;
  mdns: boolean;
  insecure: boolean;
  shell: string;
  workdir: string;
  allow: string[];
  deny: string[];
  logLevel: LogLevel;
  pretty: boolean;
  killGraceMs: number;
  auditFile: string;
  /**
   * Given only by setups made for agents before 0.3, which kept a content
   * store beside the copies; parsed so they still start, and warned about.
   */
  cacheSize?: number;
  /** Workspace copies not synced for this long are removed. */
  keepWorkspacesMs: number;
  /** Below this battery level, discharging, no new work (0: off). */
  batteryFloorPct: number;
  /** Longest a disconnected dispatcher's tasks are kept running for it. */
  maxGraceMs: number;
  /** Where sysfs is: OCTASK_SYSFS_ROOT, for tests only. */
  sysfsRoot: string;
  /** How often load and battery are read: OCTASK_LOAD_POLL_MS, for tests only. */
  loadPollMs: number;
  /** Ping interval: OCTASK_HEARTBEAT_MS, for tests only (a cut link is noticed after 3). */
  heartbeatMs: number;
  help: boolean;
  version: boolean;
}

export const AGENT_USAGE = `Usage: octask-agent [options]    (also: octask worker, octask w)

Runs commands sent by Octask dispatchers that hold the same cluster key.

Options (each also an environment variable):
  --name NAME         name shown to dispatchers (OCTASK_NAME; default: host name)
  --bind ADDR         address to listen on (OCTASK_BIND; default 0.0.0.0)
  --port N            port to listen on, 0 for any (OCTASK_PORT; default ${DEFAULT_AGENT_PORT})
  --max-jobs N        tasks run at once (OCTASK_MAX_JOBS; default: CPU count)
  --tags a,b          tags dispatchers can target (OCTASK_TAGS)
  --key-file PATH     cluster key; created if missing (OCTASK_KEY_FILE; default ~/.config/octask/key)
  --no-mdns           do not advertise on the LAN by mDNS (OCTASK_NO_MDNS=1)
  --insecure          plain WebSocket without TLS; only with a loopback --bind (OCTASK_INSECURE=1)
  --shell PATH        shell that runs commands (OCTASK_SHELL; default per platform)
  --workdir DIR       folder for task scratch space (OCTASK_WORKDIR; default ~/.cache/octask/agent)
  --allow REGEX       run only commands matching one such rule; repeatable (OCTASK_ALLOW, one per line)
  --deny REGEX        never run commands matching this rule; repeatable (OCTASK_DENY, one per line)
  --kill-grace SEC    time between TERM and KILL when a task is ended (OCTASK_KILL_GRACE; default 5)
  --audit-file PATH   one JSON line per task (OCTASK_AUDIT_FILE; default WORKDIR/audit.log)
  --keep-workspaces D remove workspace copies not synced for D days (OCTASK_KEEP_WORKSPACES; default 7)
  --battery-floor PCT below this battery level, discharging, take no new work (OCTASK_BATTERY_FLOOR; default 20, 0 = off)
  --max-grace SEC     longest a disconnected dispatcher's tasks keep running for it (OCTASK_MAX_GRACE; default 3600)
  --log-level LEVEL   debug, info, warn or error (OCTASK_LOG_LEVEL; default info)
  --pretty            human-readable log lines instead of JSON (OCTASK_PRETTY=1)
  --version, --help

Also: octask-agent service print|install --user [options]   (a systemd user unit)
`;

/** Host name reduced to the characters a name may have. */
export function defaultAgentName(host = hostname()): string {
  const name = host.split('.')[0]?.replace(/[^A-Za-z0-9_-]/g, '') ?? '';
  return name || 'agent';
}

/** Parses the agent's flags, falling back to OCTASK_* variables, then defaults. Throws on bad input. */
export function parseAgentOptions(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  cpuSource?: CpuSource,
): AgentOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      name: { type: 'string' },
      bind: { type: 'string' },
      port: { type: 'string' },
      'max-jobs': { type: 'string' },
      tags: { type: 'string' },
      'key-file': { type: 'string' },
      'no-mdns': { type: 'boolean' },
      insecure: { type: 'boolean' },
      shell: { type: 'string' },
      workdir: { type: 'string' },
      allow: { type: 'string', multiple: true },
      deny: { type: 'string', multiple: true },
      'kill-grace': { type: 'string' },
      'audit-file': { type: 'string' },
      'cache-size': { type: 'string' },
      'keep-workspaces': { type: 'string' },
      'battery-floor': { type: 'string' },
      'max-grace': { type: 'string' },
      'log-level': { type: 'string' },
      pretty: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (positionals.length > 0)
    throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const flag = (v: boolean | undefined, name: string): boolean =>
    v ?? /^(1|true|yes)$/i.test(env[name] ?? '');
  const lines = (v: string | undefined): string[] =>
    v ? v.split('\n').filter((l) => l.length > 0) : [];

  const name = values.name ?? env.OCTASK_NAME ?? defaultAgentName();
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(name))
    throw new Error(`--name must be 1 to 63 of A-Z a-z 0-9 _ -, got ${JSON.stringify(name)}`);
  const logLevel = values['log-level'] ?? env.OCTASK_LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.includes(logLevel as LogLevel))
    throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const cacheHome = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  const workdir = values.workdir ?? env.OCTASK_WORKDIR ?? join(cacheHome, 'octask', 'agent');
  const cpuCount = countCpus(cpuSource).parallelism;

  return {
    name,
    nameGiven: values.name !== undefined || Boolean(env.OCTASK_NAME),
    bind: values.bind ?? env.OCTASK_BIND ?? '0.0.0.0',
    port: integer('--port', values.port ?? env.OCTASK_PORT, DEFAULT_AGENT_PORT, 0, 65535),
    maxJobs: integer('--max-jobs', values['max-jobs'] ?? env.OCTASK_MAX_JOBS, cpuCount, 1, 1024),
    tags: (values.tags ?? env.OCTASK_TAGS ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
    keyFile: values['key-file'] ?? env.OCTASK_KEY_FILE ?? defaultKeyFile(env),
    mdns: !flag(values['no-mdns'], 'OCTASK_NO_MDNS'),
    insecure: flag(values.insecure, 'OCTASK_INSECURE'),
    shell: values.shell ?? env.OCTASK_SHELL ?? defaultShell(env),
    workdir,
    allow: values.allow ?? lines(env.OCTASK_ALLOW),
    deny: values.deny ?? lines(env.OCTASK_DENY),
    logLevel: logLevel as LogLevel,
    pretty: flag(values.pretty, 'OCTASK_PRETTY'),
    killGraceMs: Math.round(
      number('--kill-grace', values['kill-grace'] ?? env.OCTASK_KILL_GRACE, 5) * 1000,
    ),
    auditFile: values['audit-file'] ?? env.OCTASK_AUDIT_FILE ?? join(workdir, 'audit.log'),
    ...((values['cache-size'] ?? env.OCTASK_CACHE_SIZE) !== undefined
      ? {
          cacheSize: byteSize('--cache-size', values['cache-size'] ?? env.OCTASK_CACHE_SIZE, 0),
        }
      : {}),
    keepWorkspacesMs: Math.round(
      number('--keep-workspaces', values['keep-workspaces'] ?? env.OCTASK_KEEP_WORKSPACES, 7) *
        86_400_000,
    ),
    batteryFloorPct: integer(
      '--battery-floor',
      values['battery-floor'] ?? env.OCTASK_BATTERY_FLOOR,
      20,
      0,
      100,
    ),
    maxGraceMs: Math.round(
      number('--max-grace', values['max-grace'] ?? env.OCTASK_MAX_GRACE, 3600) * 1000,
    ),
    sysfsRoot: env.OCTASK_SYSFS_ROOT || '/sys',
    loadPollMs: integer('OCTASK_LOAD_POLL_MS', env.OCTASK_LOAD_POLL_MS, 10_000, 50, 3_600_000),
    heartbeatMs: integer(
      'OCTASK_HEARTBEAT_MS',
      env.OCTASK_HEARTBEAT_MS,
      HEARTBEAT_MS,
      100,
      600_000,
    ),
    help: values.help ?? false,
    version: values.version ?? false,
  };
}

function integer(
  flagName: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(
      `${flagName} must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`,
    );
  return n;
}

function number(flagName: string, text: string | undefined, fallback: number): number {
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`${flagName} must be a number of seconds, got ${JSON.stringify(text)}`);
  return n;
}

function byteSize(flagName: string, text: string | undefined, fallback: number): number {
  if (text === undefined || text === '') return fallback;
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(text.trim());
  if (!m)
    throw new Error(`${flagName} must be a size such as 500M or 2G, got ${JSON.stringify(text)}`);
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[
    (m[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'
  ];
  return Math.round(Number(m[1]) * scale);
}
