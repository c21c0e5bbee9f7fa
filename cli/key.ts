import { parseArgs } from 'node:util';
import { readKeyFile, writeNewKey } from '../agent/keyFile';
import { defaultKeyFile, deriveAgentKey, pairLine, pasteLine } from '../shared/clusterKey';
import { EXIT } from '../shared/exitCode';

export const KEY_USAGE = `Usage: octask key [--new [--force]] [--pair NAME] [--key-file PATH]

Shows the cluster key's id and a line to paste on another dispatcher machine
(one that runs the editor or the CLI) so that it joins the same cluster.
--new writes a fresh key (--force to replace one).
--pair NAME prints the line for one agent device instead: it installs a key
derived for that device only (its name becomes NAME), which reaches that
agent and nothing else.
`;

export function keyCommand(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      new: { type: 'boolean' },
      force: { type: 'boolean' },
      pair: { type: 'string' },
      'key-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(KEY_USAGE);
    return EXIT.ok;
  }
  const path = values['key-file'] ?? process.env.OCTASK_KEY_FILE ?? defaultKeyFile();
  const key = values.new ? writeNewKey(path, values.force ?? false) : readKeyFile(path);
  if (values.pair !== undefined) {
    const agentKey = deriveAgentKey(key, values.pair);
    process.stdout.write(
      `Agent key for ${agentKey.pairing} (agent key id ${agentKey.id}, cluster key id ${key.id}).\n` +
        `On that device, run:\n\n  ${pairLine(agentKey)}\n\n` +
        `then (re)start octask-agent there; it will be named ${agentKey.pairing}.\n`,
    );
    return EXIT.ok;
  }
  process.stdout.write(
    `${values.new ? 'Wrote a new cluster key to' : 'Cluster key in'} ${path}\n` +
      `key id: ${key.id}\n\nTo make another machine a dispatcher of this cluster, run there:\n\n  ${pasteLine(key)}\n\n` +
      `To add an agent device, print its own line with: octask key --pair NAME\n`,
  );
  return EXIT.ok;
}
