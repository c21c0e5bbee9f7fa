import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AgentKeyFile, ClusterKey } from '../shared/clusterKey';
import {
  formatKey,
  generateKey,
  keyFileModeProblem,
  parseAgentKeyFile,
  parseKey,
} from '../shared/clusterKey';
import { ErrorCode, OctaskError } from '../shared/errors';

/** Reads the cluster key (dispatchers, the CLI); a missing, malformed or too open file is an OctaskError. */
export function readKeyFile(path: string): ClusterKey {
  return parseKey(readKeyText(path), `key file ${path}`);
}

/** Reads an agent's key: its pairing key, or a cluster key from before pairing. */
export function readAgentKeyFile(path: string): AgentKeyFile {
  return parseAgentKeyFile(readKeyText(path), `key file ${path}`);
}

function readKeyText(path: string): string {
  let text: string;
  try {
    const problem = keyFileModeProblem(path, statSync(path).mode, process.platform);
    if (problem) throw new OctaskError(ErrorCode.BadKeyFile, problem);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof OctaskError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`;
    throw new OctaskError(
      ErrorCode.BadKeyFile,
      `key file ${path} ${why}; create one with "octask key --new", or paste the line "octask key" prints on a machine that has the key`,
    );
  }
  return text;
}

/**
 * Writes a fresh key with mode 0600. Refuses to replace an existing key
 * unless `force`, since that would cut this machine off from its cluster.
 */
export function writeNewKey(path: string, force = false): ClusterKey {
  const key = generateKey();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(path, formatKey(key) + '\n', { mode: 0o600, flag: force ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new OctaskError(
        ErrorCode.BadKeyFile,
        `key file ${path} already exists; add --force to replace it (every agent and dispatcher then needs the new key)`,
      );
    }
    throw err;
  }
  return key;
}

/** Reads an agent's key, creating a cluster key first if the file does not exist yet. */
export function loadOrCreateAgentKey(path: string): { file: AgentKeyFile; created: boolean } {
  try {
    return { file: { kind: 'cluster', key: writeNewKey(path, false) }, created: true };
  } catch (err) {
    if (err instanceof OctaskError) return { file: readAgentKeyFile(path), created: false };
    throw err;
  }
}
