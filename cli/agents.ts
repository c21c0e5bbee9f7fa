import { parseArgs } from 'node:util';
import { Dispatcher } from '../extension/dispatcher/dispatcher';
import type { AgentInfo } from '../shared/rpc';
import {
  DISPATCHER_FLAGS,
  DISPATCHER_FLAGS_USAGE,
  dispatcherFlags,
  loadKey,
} from './dispatcherFlags';
import { EXIT } from '../shared/exitCode';
import { compareVersions, OCTASK_VERSION } from '../shared/version';

export const AGENTS_USAGE = `Usage: octask agents [options]

Lists the agents found by mDNS and listed with --agent, and whether this
machine can use them. Exits 0 when at least one is online, else 125.

Options:
${DISPATCHER_FLAGS_USAGE}
  --json              print {"agents":[...]} on stdout; "outdated": true marks an
                      agent running an older Octask than this one
`;

export async function agentsCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ...DISPATCHER_FLAGS,
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(AGENTS_USAGE);
    return EXIT.ok;
  }
  const flags = dispatcherFlags(values);
  const dispatcher = new Dispatcher({
    key: loadKey(flags),
    agents: flags.agents,
    mdns: flags.mdns,
  });
  dispatcher.start();
  try {
    await dispatcher.settled();
    const agents = dispatcher.agents();
    warnSharedNames(agents);
    if (values.json)
      process.stdout.write(
        JSON.stringify({ agents: agents.map((a) => ({ ...a, outdated: isOutdated(a) })) }) + '\n',
      );
    else process.stdout.write(formatAgents(agents));
    return agents.some(
      (a) => a.status === 'online' || a.status === 'busy' || a.status === 'resting',
    )
      ? EXIT.ok
      : EXIT.octaskFailure;
  } finally {
    dispatcher.close();
  }
}

export function formatAgents(agents: readonly AgentInfo[]): string {
  if (agents.length === 0)
    return 'No agents found. Start one with octask-agent, or list one with --agent HOST:PORT.\n';
  const rows = [
    [
      'NAME',
      'ADDRESS',
      'VERSION',
      'OS',
      'ARCH',
      'CPUS',
      'SLOTS',
      'QUEUE',
      'LOAD',
      'BATTERY',
      'STATUS',
    ],
    ...agents.map((a) => [
      a.label,
      a.address,
      a.version === null ? '-' : isOutdated(a) ? `${a.version} (older)` : a.version,
      a.os ?? '-',
      a.arch ?? '-',
      a.cpus === null ? '-' : String(a.cpus),
      a.maxJobs ? `${a.running}/${a.maxJobs}` : '-',
      a.maxJobs ? String(a.queued) : '-',
      a.loadAvg === null ? '-' : a.loadAvg.toFixed(2),
      a.battery ? `${a.battery.level}%${a.battery.charging ? ' charging' : ''}` : '-',
      a.status === 'resting'
        ? `resting (battery ${a.battery?.level ?? '?'}%)`
        : a.lastError && a.status !== 'online' && a.status !== 'busy'
          ? `${a.status}: ${a.lastError.message}`
          : a.status,
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    rows
      .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
      .join('\n') + '\n'
  );
}

/** The agent runs an older Octask than this CLI: its device needs the new agent file. */
export function isOutdated(agent: Pick<AgentInfo, 'version'>, ours = OCTASK_VERSION): boolean {
  return agent.version !== null && compareVersions(agent.version, ours) < 0;
}

/** Says once, on stderr, which agents share a name and how they are told apart. */
export function warnSharedNames(agents: readonly AgentInfo[]): void {
  const byName = new Map<string, string[]>();
  for (const a of agents) byName.set(a.name, [...(byName.get(a.name) ?? []), a.label]);
  for (const [name, labels] of byName) {
    const distinct = [...new Set(labels)];
    if (distinct.length > 1)
      process.stderr.write(
        `octask: warning: two agents share the name ${name}; they are shown as ${distinct.join(' and ')} (give one a different --name)\n`,
      );
  }
}
