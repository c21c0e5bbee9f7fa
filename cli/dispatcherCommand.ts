import { parseArgs } from 'node:util';
import { serveRpc } from '../extension/dispatcher/rpcServer';
import {
  DISPATCHER_FLAGS,
  DISPATCHER_FLAGS_USAGE,
  dispatcherFlags,
  loadKey,
} from './dispatcherFlags';
import { EXIT } from '../shared/exitCode';
import type { ClusterKey } from '../shared/clusterKey';
import { CLUSTER_KEY_ENV, parseKey } from '../shared/clusterKey';
import { UsageError } from './run';

export const DISPATCHER_USAGE = `Usage: octask dispatcher --stdio [options]    (alias: octask d)

Serves the dispatcher as a JSON-RPC server on stdin/stdout, for editors.
The editor's initializationOptions (agents, mdns) override these flags; the
editor hands over the cluster key in the environment (${CLUSTER_KEY_ENV}),
never in a message, so a JSON-RPC trace cannot show it.

Options:
${DISPATCHER_FLAGS_USAGE}
  --state-dir DIR     keep tasks, their output and the event log here, so a
                      restarted dispatcher reattaches to what was running
`;

export async function dispatcherCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ...DISPATCHER_FLAGS,
      stdio: { type: 'boolean' },
      'state-dir': { type: 'string' },
      // vscode-languageclient appends it; vscode-languageserver reads it itself to exit with the editor.
      clientProcessId: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(DISPATCHER_USAGE);
    return EXIT.ok;
  }
  if (!values.stdio)
    throw new UsageError('octask dispatcher needs --stdio (the only transport so far)');
  const flags = dispatcherFlags(values);
  const given = keyFromEnvironment();
  await serveRpc({
    loadKey: () => given ?? loadKey(flags),
    agents: flags.agents,
    mdns: flags.mdns,
    lostAfterMs: flags.lostAfterMs,
    heartbeatMs: flags.heartbeatMs,
    stateDir: values['state-dir'],
  });
  return EXIT.ok;
}

/** The key the editor put in our environment, taken out of it so nothing we start inherits it. */
function keyFromEnvironment(env: NodeJS.ProcessEnv = process.env): ClusterKey | undefined {
  const text = env[CLUSTER_KEY_ENV];
  delete env[CLUSTER_KEY_ENV];
  return text ? parseKey(text, 'the key from the editor') : undefined;
}
