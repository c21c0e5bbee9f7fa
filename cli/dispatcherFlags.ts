import { readKeyFile } from '../agent/keyFile';
import { defaultKeyFile } from '../shared/clusterKey';
import type { ClusterKey } from '../shared/clusterKey';
import { ErrorCode, OctaskError } from '../shared/errors';

/** Flags every dispatcher-side command takes (run, agents, dispatcher). */
export const DISPATCHER_FLAGS = {
  agent: { type: 'string', multiple: true },
  'key-file': { type: 'string' },
  'no-mdns': { type: 'boolean' },
  'lost-after': { type: 'string' },
} as const;

export interface DispatcherFlags {
  agents: string[];
  keyFile: string;
  mdns: boolean;
  /** How long a dropped link may stay down before its tasks run elsewhere. */
  lostAfterMs: number;
  /** Ping interval: OCTASK_HEARTBEAT_MS, for tests only. */
  heartbeatMs: number | undefined;
}

export const DISPATCHER_FLAGS_USAGE = `  --agent HOST:PORT   an agent to dial (repeatable; OCTASK_AGENTS, comma-separated);
                      ws://HOST:PORT for an agent started with --insecure
  --key-file PATH     cluster key (OCTASK_KEY_FILE; default ~/.config/octask/key)
  --no-mdns           do not look for agents on the LAN by mDNS (OCTASK_NO_MDNS=1)
  --lost-after SEC    how long an agent's link may be down before its tasks run
                      elsewhere (OCTASK_LOST_AFTER; default 60)`;

export function dispatcherFlags(
  values: { agent?: string[]; 'key-file'?: string; 'no-mdns'?: boolean; 'lost-after'?: string },
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
    lostAfterMs: seconds('--lost-after', values['lost-after'] ?? env.OCTASK_LOST_AFTER, 60),
    heartbeatMs: env.OCTASK_HEARTBEAT_MS
      ? Math.max(100, Number(env.OCTASK_HEARTBEAT_MS)) || undefined
      : undefined,
  };
}

export function loadKey(flags: DispatcherFlags): ClusterKey {
  return readKeyFile(flags.keyFile);
}

function seconds(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined || text === '') return fallback * 1000;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || n > 86_400)
    throw new OctaskError(
      ErrorCode.BadRequest,
      `${flag} must be a number of seconds from 0 to 86400, got ${JSON.stringify(text)}`,
    );
  return Math.round(n * 1000);
}
