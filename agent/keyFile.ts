import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ClusterKey } from '../shared/clusterKey';
import { formatKey, generateKey, parseKey } from '../shared/clusterKey';
import { ErrorCode, OctaskError } from '../shared/errors';

/** Reads the cluster key; a missing or malformed file is an OctaskError. */
export function readKeyFile(path: string): ClusterKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`;
    throw new OctaskError(
      ErrorCode.BadKeyFile,
      `key file ${path} ${why}; create one with "octask key --new" or copy the agent's key line`,
    );
  }
  return parseKey(text, `key file ${path}`);
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

/** Reads the key, creating it first if the file does not exist yet. */
export function loadOrCreateKey(path: string): { key: ClusterKey; created: boolean } {
  try {
    return { key: writeNewKey(path, false), created: true };
  } catch (err) {
    if (err instanceof OctaskError) return { key: readKeyFile(path), created: false };
    throw err;
  }
}
