import { parseArgs } from 'node:util';
import { readKeyFile, writeNewKey } from '../agent/keyFile';
import { defaultKeyFile } from '../shared/clusterKey';
import { pasteLine } from '../shared/clusterKey';
import { EXIT } from '../shared/exitCode';

export const KEY_USAGE = `Usage: octask key [--new [--force]] [--key-file PATH]

Shows the cluster key's id and a line to paste on another machine so that it
joins the same cluster. --new writes a fresh key (--force to replace one).
`;

export function keyCommand(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      new: { type: 'boolean' },
      force: { type: 'boolean' },
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
  process.stdout.write(
    `${values.new ? 'Wrote a new cluster key to' : 'Cluster key in'} ${path}\n` +
      `key id: ${key.id}\n\nTo put another machine in this cluster, run there:\n\n  ${pasteLine(key)}\n`,
  );
  return EXIT.ok;
}
