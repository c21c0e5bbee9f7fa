import { createHash, randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, OctaskError } from './errors';

/** A cluster key: 32 random bytes, written as 64 hex digits on one line. */
export const KEY_BYTES = 32;

export interface ClusterKey {
  /** The secret itself; never logged, never sent. */
  readonly secret: Buffer;
  /** A public name for the key, used as the PSK identity and in mDNS TXT. */
  readonly id: string;
}

export function generateKey(): ClusterKey {
  return keyFromSecret(randomBytes(KEY_BYTES));
}

export function keyFromSecret(secret: Buffer): ClusterKey {
  return { secret, id: keyIdOf(secret) };
}

/** The key id: a short hash that names the key without revealing it. */
export function keyIdOf(secret: Buffer): string {
  return createHash('sha256').update('octask-key-id\0').update(secret).digest('hex').slice(0, 16);
}

/** Parses a key file's text (64 hex digits; surrounding white space is ignored). */
export function parseKey(text: string, source = 'key'): ClusterKey {
  const hex = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new OctaskError(
      ErrorCode.BadKeyFile,
      `${source} does not hold a cluster key (expected 64 hex digits on one line)`,
    );
  }
  return keyFromSecret(Buffer.from(hex, 'hex'));
}

export function formatKey(key: ClusterKey): string {
  return key.secret.toString('hex');
}

/** A shell line that installs this key on another machine, for the user to paste. */
export function pasteLine(key: ClusterKey): string {
  return `mkdir -p ~/.config/octask && (umask 077 && echo ${formatKey(key)} > ~/.config/octask/key)`;
}

/** `$XDG_CONFIG_HOME/octask/key`, i.e. `~/.config/octask/key` by default: where agent, CLI and editor look. */
export function defaultKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'octask', 'key');
}
