import { parseArgs } from 'node:util';
import { defaultKeyFile } from '../shared/clusterKey';
import { isOctaskError } from '../shared/errors';
import { readAgentKeyFile } from './keyFile';

export const AGENT_KEY_USAGE = `Usage: octask-agent key [--key-file PATH]

Shows which key this agent holds (its pairing, or the cluster key itself)
and how to pair it again. Prints no key material.
`;

/** How to give an agent its own key, for messages that end with what to do. */
export function repairHint(name: string): string {
  return `To give it a key of its own, run "octask key --pair ${name}" on a dispatcher machine, run the line it prints here, and restart the agent.`;
}

/** `octask-agent key`: the agent's side of pairing. */
export function agentKeyCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): number {
  let path: string;
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: { 'key-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      process.stdout.write(AGENT_KEY_USAGE);
      return 0;
    }
    path = values['key-file'] ?? env.OCTASK_KEY_FILE ?? defaultKeyFile(env);
  } catch (err) {
    process.stderr.write(`octask-agent key: ${(err as Error).message}\n\n${AGENT_KEY_USAGE}`);
    return 2;
  }
  try {
    const file = readAgentKeyFile(path);
    if (file.kind === 'paired') {
      process.stdout.write(
        `Key file ${path}\n` +
          `paired as ${file.key.pairing} (agent key id ${file.key.id}, cluster key id ${file.key.clusterId})\n` +
          `This key reaches this agent only; dispatchers derive it from the cluster key.\n\n` +
          `To pair again (a new cluster key, or a leaked key file), run "octask key --pair ${file.key.pairing}"\n` +
          `on a dispatcher machine, run the line it prints here, and restart the agent.\n`,
      );
    } else {
      process.stdout.write(
        `Key file ${path}\n` +
          `holds the cluster key itself (key id ${file.key.id}): any task on this agent can read it\n` +
          `and reach every other agent, or stand in for a dispatcher.\n\n` +
          `${repairHint('NAME')}\n` +
          `NAME becomes the agent's name.\n`,
      );
    }
    return 0;
  } catch (err) {
    process.stderr.write(`octask-agent key: ${isOctaskError(err) ? err.message : String(err)}\n`);
    return 2;
  }
}
