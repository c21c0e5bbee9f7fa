import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseAgentOptions } from './options';

/*
 * `octask-agent service print|install --user`: a systemd user unit that keeps
 * the agent running on a Pi or any Linux box, written from the command that
 * is running now, so the unit starts the same Node and the same file.
 */

export const SERVICE_USAGE = `Usage: octask-agent service print [AGENT OPTIONS]
       octask-agent service install --user [AGENT OPTIONS]

print writes a systemd user unit that runs this agent to stdout; install
--user writes it to ~/.config/systemd/user/octask-agent.service. AGENT
OPTIONS (see octask-agent --help) are checked now and go on its ExecStart line.
`;

export const SERVICE_NAME = 'octask-agent';

/** The unit's text for a command line (absolute program first). */
export function serviceUnit(command: readonly string[]): string {
  return `# Made by "octask-agent service"; "octask-agent service print" shows the current one.
[Unit]
Description=Octask agent: runs build and test commands for Octask dispatchers

[Service]
ExecStart=${command.map(systemdQuote).join(' ')}
# The agent alone gets SIGTERM and drains: running tasks finish, then it exits 0.
# (The default, control-group, would signal the tasks too.) Whatever is still
# running when TimeoutStopSec ends gets SIGKILL.
KillMode=mixed
TimeoutStopSec=10min
Restart=on-failure
RestartSec=5s

[Install]
WantedBy=default.target
`;
}

/** One ExecStart word: quoted when needed, with systemd's % and $ expansions escaped. */
export function systemdQuote(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * The command that starts this same agent: node, its flags, the script, and
 * any words before "service" (`octask worker service ...` keeps `worker`).
 */
export function selfCommand(agentArgs: readonly string[], argv = process.argv): string[] {
  const at = argv.indexOf('service', 2);
  const script = argv[1] ? realpathSync(resolve(argv[1])) : '';
  return [
    process.execPath,
    ...process.execArgv,
    ...(script ? [script] : []),
    ...argv.slice(2, at < 0 ? 2 : at),
    ...agentArgs,
  ];
}

export function userUnitPath(env: NodeJS.ProcessEnv = process.env): string {
  const config = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(config, 'systemd', 'user', `${SERVICE_NAME}.service`);
}

/** Runs `service ...`; resolves with the exit code. */
export function serviceCommand(
  argv: string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
  env: NodeJS.ProcessEnv = process.env,
): number {
  const [action, ...rest] = argv;
  const user = rest.includes('--user');
  const agentArgs = rest.filter((a) => a !== '--user');
  if (action === '--help' || action === '-h' || action === undefined) {
    out(SERVICE_USAGE);
    return action === undefined ? 2 : 0;
  }
  if (action !== 'print' && action !== 'install') {
    throw new Error(`unknown service action ${JSON.stringify(action)}; use print or install`);
  }
  // A typo fails here, not at the next boot.
  parseAgentOptions(agentArgs, env);
  const unit = serviceUnit(selfCommand(agentArgs));
  if (action === 'print') {
    out(unit);
    return 0;
  }
  if (!user) {
    throw new Error(
      'service install needs --user: the agent runs as you, with your key (a system unit is yours to write from "service print")',
    );
  }
  const path = userUnitPath(env);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, unit);
  out(
    `Wrote ${path}. To start the agent now and at every boot, run:\n\n` +
      `  systemctl --user daemon-reload && systemctl --user enable --now ${SERVICE_NAME}\n` +
      `  loginctl enable-linger $USER\n\n` +
      'The second line keeps it running while you are logged out.\n',
  );
  return 0;
}
