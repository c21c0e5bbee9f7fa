import { isOctaskError } from '../shared/errors';
import { PROTOCOL_VERSION } from '../shared/protocol';
import { OCTASK_VERSION } from '../shared/version';
import { agentsCommand } from './agents';
import { EXIT } from '../shared/exitCode';
import { keyCommand } from './key';
import { runCommand, UsageError } from './run';

export const USAGE = `Usage: octask COMMAND [options]

Commands:
  run [options] -- CMD    run a command on the cluster, streaming its output
  agents                  list the agents found and their state
  key [--new]             show (or create) the cluster key and how to share it
  worker, w               run an agent on this machine (same as octask-agent)
  dispatcher, d --stdio   serve the dispatcher over JSON-RPC (for editors)
  watcher [--stop]        the workspace watcher runs start in the background (Linux)

Run "octask COMMAND --help" for a command's options.
`;

/** Runs the `octask` CLI; resolves with the process exit status. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await runCommand(rest);
      case 'agents':
        return await agentsCommand(rest);
      case 'key':
        return keyCommand(rest);
      // Loaded only when used: `run` starts faster without the agent and
      // the JSON-RPC server (a third of the bundle) being set up.
      case 'worker':
      case 'w':
        return await (await import('../agent/main.js')).runAgentCli(rest);
      case 'watcher':
        return await (await import('./watcherServer.js')).watcherCommand(rest);
      case 'dispatcher':
      case 'd':
        return await (await import('./dispatcherCommand.js')).dispatcherCommand(rest);
      case '--version':
      case 'version':
        process.stdout.write(`octask ${OCTASK_VERSION} (protocol ${PROTOCOL_VERSION})\n`);
        return EXIT.ok;
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? EXIT.usage : EXIT.ok;
      default:
        process.stderr.write(`octask: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
        return EXIT.usage;
    }
  } catch (err) {
    if (isOctaskError(err)) {
      process.stderr.write(`octask: ${err.code}: ${err.message}\n`);
      return EXIT.octaskFailure;
    }
    if (
      err instanceof UsageError ||
      (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      process.stderr.write(`octask: ${(err as Error).message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`octask: internal error: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.octaskFailure;
  }
}
