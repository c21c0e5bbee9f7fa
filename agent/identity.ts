import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ID = /^[0-9a-f]{16}$/;

/**
 * The agent's id: random, made on its first start and kept in its workdir,
 * so two devices (or two agents on one machine) are always two agents,
 * whatever their names and host names. Not beside the key: every agent on
 * a machine shares the key file, while each has a workdir of its own.
 */
export function loadOrCreateAgentId(workdir: string): string {
  const path = join(workdir, 'agent-id');
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (ID.test(text)) return text;
  } catch {
    // not made yet
  }
  mkdirSync(workdir, { recursive: true });
  const id = randomBytes(8).toString('hex');
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${id}\n`, { mode: 0o644 });
  renameSync(tmp, path);
  return id;
}
