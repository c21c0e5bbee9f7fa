import { readKeyFile } from '../agent/keyFile';
import { defaultKeyFile } from '../shared/clusterKey';
import type { ClusterKey } from '../shared/clusterKey';

/** Flags every dispatcher-side command takes (run, agents, dispatcher). */
export const DISPATCHER_FLAGS = {
  agent: { type: 'string', multiple: true },
  'key-file': { type: 'string' },
  'no-mdns': { type: 'boolean' },
} as const;

export interface DispatcherFlags {
  agents: string[];
  keyFile: string;
  mdns: boolean;
}

export const DISPATCHER_FLAGS_USAGE = `  --agent HOST:PORT   an agent to dial (repeatable; OCTASK_AGENTS, comma-separated);
                      ws://HOST:PORT for an agent started with --insecure
  --key-file PATH     cluster key (OCTASK_KEY_FILE; default ~/.config/octask/key)
  --no-mdns           do not look for agents on the LAN by mDNS (OCTASK_NO_MDNS=1)`;

export function dispatcherFlags(
  values: { agent?: string[]; 'key-file'?: string; 'no-mdns'?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): DispatcherFlags {
  const listed =
    values.agent ??
    (env.OCTASK_AGENTS ?? '')
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean);
  return {
    agents: listed,
    keyFile: values['key-file'] ?? env.OCTASK_KEY_FILE ?? defaultKeyFile(env),
    mdns: !(values['no-mdns'] ?? /^(1|true|yes)$/i.test(env.OCTASK_NO_MDNS ?? '')),
  };
}

export function loadKey(flags: DispatcherFlags): ClusterKey {
  return readKeyFile(flags.keyFile);
}
