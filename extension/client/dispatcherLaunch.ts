import { CLUSTER_KEY_ENV } from '../../shared/clusterKey';

/** What the editor starts its dispatcher with; read afresh at each (re)start. */
export interface DispatcherLaunchOptions {
  /** The cluster key as 64 hex digits. */
  key: string;
  agents: string[];
  mdns: boolean;
  /** This window's storage for the dispatcher's journal: tasks survive a reload or a crash. */
  stateDir?: string | undefined;
  lostAfterMs?: number;
}

/** What `initialize` carries: everything but the key. */
export interface LaunchInitOptions {
  agents: string[];
  mdns: boolean;
  stateDir?: string;
  lostAfterMs?: number;
}

/**
 * How the key and settings reach the dispatcher process: the key in the
 * child's environment, the rest in `initializationOptions`. A verbose
 * JSON-RPC trace (octask.trace.server) logs every message, so the key must
 * never be in one.
 */
export function dispatcherLaunch(
  options: DispatcherLaunchOptions,
  env: NodeJS.ProcessEnv = process.env,
): { env: NodeJS.ProcessEnv; initializationOptions: LaunchInitOptions } {
  return {
    env: { ...env, [CLUSTER_KEY_ENV]: options.key },
    initializationOptions: {
      agents: options.agents,
      mdns: options.mdns,
      ...(options.lostAfterMs !== undefined ? { lostAfterMs: options.lostAfterMs } : {}),
      ...(options.stateDir ? { stateDir: options.stateDir } : {}),
    },
  };
}
