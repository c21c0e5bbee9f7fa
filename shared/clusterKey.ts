import { createHash, createHmac, randomBytes } from 'node:crypto';
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
  const paired = PAIRED_LINE.exec(hex);
  if (paired) {
    throw new OctaskError(
      ErrorCode.BadKeyFile,
      `${source} holds an agent's key (paired as ${paired[1]}), which reaches that one agent only; a dispatcher needs the cluster key: copy it from a dispatcher machine ("octask key" prints the line)`,
    );
  }
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

/**
 * The environment variable through which the editor hands the cluster key to
 * its dispatcher process: never in a JSON-RPC message, which a verbose trace
 * would write to the log. The dispatcher removes it from its environment once read.
 */
export const CLUSTER_KEY_ENV = 'OCTASK_CLUSTER_KEY';

/** A shell line that installs this key on another machine, for the user to paste. */
export function pasteLine(key: ClusterKey): string {
  return `mkdir -p ~/.config/octask && (umask 077 && echo ${formatKey(key)} > ~/.config/octask/key)`;
}

/** `$XDG_CONFIG_HOME/octask/key`, i.e. `~/.config/octask/key` by default: where agent, CLI and editor look. */
export function defaultKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'octask', 'key');
}

/**
 * An agent's own key: derived from the cluster key and a pairing id, so the
 * agent (and any task on it) can reach no other agent and stand in for no
 * dispatcher. Dispatchers derive it again from the pairing id the agent names
 * in its TLS-PSK identity hint.
 */
export interface AgentKey {
  readonly pairing: string;
  /** The cluster key's id, public: advertised by mDNS so dispatchers see which cluster. */
  readonly clusterId: string;
  /** HMAC-SHA256(cluster secret, "octask-agent-key:" + pairing); never logged, never sent. */
  readonly secret: Buffer;
  /** This key's own id. */
  readonly id: string;
}

/** What an agent's key file may hold: its own pairing key, or (before pairing existed) the cluster key. */
export type AgentKeyFile = { kind: 'paired'; key: AgentKey } | { kind: 'cluster'; key: ClusterKey };

/** Pairing ids have an agent name's characters, so the pairing can be the name. */
const PAIRING_ID = /^[A-Za-z0-9_-]{1,63}$/;
const PAIRED_LINE = /^octask-pair ([A-Za-z0-9_-]{1,63}) ([0-9a-f]{16}) ([0-9a-fA-F]{64})$/;

export function isPairingId(text: string): boolean {
  return PAIRING_ID.test(text);
}

export function deriveAgentKey(cluster: ClusterKey, pairing: string): AgentKey {
  if (!isPairingId(pairing)) {
    throw new OctaskError(
      ErrorCode.BadRequest,
      `a pairing name must be 1 to 63 of A-Z a-z 0-9 _ -, got ${JSON.stringify(pairing.slice(0, 80))}`,
    );
  }
  const secret = createHmac('sha256', cluster.secret)
    .update(`octask-agent-key:${pairing}`)
    .digest();
  return { pairing, clusterId: cluster.id, secret, id: keyIdOf(secret) };
}

/** The agent key file's one line: `octask-pair NAME CLUSTER-ID KEY`. */
export function formatAgentKey(key: AgentKey): string {
  return `octask-pair ${key.pairing} ${key.clusterId} ${key.secret.toString('hex')}`;
}

/** Parses an agent's key file: a pairing line, or a plain cluster key (still served, with a warning). */
export function parseAgentKeyFile(text: string, source = 'key'): AgentKeyFile {
  const m = PAIRED_LINE.exec(text.trim());
  if (!m) return { kind: 'cluster', key: parseKey(text, source) };
  const secret = Buffer.from(m[3] as string, 'hex');
  return {
    kind: 'paired',
    key: { pairing: m[1] as string, clusterId: m[2] as string, secret, id: keyIdOf(secret) },
  };
}

/** The shell line that installs one agent's key on its device, for the user to paste there. */
export function pairLine(key: AgentKey): string {
  return `mkdir -p ~/.config/octask && (umask 077 && echo '${formatAgentKey(key)}' > ~/.config/octask/key)`;
}

/**
 * What is wrong with a key file's permissions, or undefined. Like ssh, a key
 * that group or others can read (or replace) is refused, with the fix.
 */
export function keyFileModeProblem(
  path: string,
  mode: number,
  platform: string,
): string | undefined {
  // Windows has no such bits; its ACLs are the user profile's.
  if (platform === 'win32' || (mode & 0o077) === 0) return undefined;
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  return `key file ${path} is open to group or others (mode ${octal}), so another user could read or replace it; fix it with: chmod 600 ${path}`;
}
