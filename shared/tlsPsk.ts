import type { AgentKey, ClusterKey } from './clusterKey';
import { deriveAgentKey, isPairingId } from './clusterKey';

/**
 * TLS settings both sides use: TLS 1.2 (Node's PSK works for 1.2 only) with
 * an ECDHE-PSK suite, so there is forward secrecy and no certificate, and the
 * key never crosses the wire. A paired agent's identity hint names its
 * pairing (`octask-pair:NAME`) and the dispatcher answers with that identity
 * and the key it derives for it; an agent holding the cluster key itself
 * sends no hint and expects the cluster key's id.
 */
export const PSK_CIPHERS = 'ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES128-CBC-SHA256';
export const TLS_VERSION = 'TLSv1.2' as const;

/** The PSK identity (and hint) of a paired agent. */
export const PAIRING_HINT_PREFIX = 'octask-pair:';

export interface PskServerOptions {
  ciphers: string;
  minVersion: typeof TLS_VERSION;
  maxVersion: typeof TLS_VERSION;
  pskCallback: (socket: unknown, identity: string) => Buffer | null;
  pskIdentityHint?: string;
}

export interface PskClientOptions {
  ciphers: string;
  minVersion: typeof TLS_VERSION;
  maxVersion: typeof TLS_VERSION;
  pskCallback: (hint: string | null) => { psk: Buffer; identity: string } | null;
  checkServerIdentity: () => undefined;
}

/** What an agent serves with: its pairing key, or the cluster key itself. */
export type ServerKey = ClusterKey | AgentKey;

export function isAgentKey(key: ServerKey): key is AgentKey {
  return 'pairing' in key;
}

export function pskServerOptions(key: ServerKey): PskServerOptions {
  const base = { ciphers: PSK_CIPHERS, minVersion: TLS_VERSION, maxVersion: TLS_VERSION };
  if (!isAgentKey(key)) {
    return {
      ...base,
      pskCallback: (_socket, identity) => (identity === key.id ? key.secret : null),
    };
  }
  const identity = PAIRING_HINT_PREFIX + key.pairing;
  return {
    ...base,
    pskIdentityHint: identity,
    pskCallback: (_socket, given) => (given === identity ? key.secret : null),
  };
}

/** The pairing a server's identity hint names, or undefined for an agent holding the cluster key. */
export function pairingOfHint(hint: string | null): string | undefined {
  if (!hint?.startsWith(PAIRING_HINT_PREFIX)) return undefined;
  const pairing = hint.slice(PAIRING_HINT_PREFIX.length);
  return isPairingId(pairing) ? pairing : undefined;
}

/**
 * A dispatcher's side: answers a paired agent's hint with the key derived for
 * that pairing, anyone else with the cluster key. `onPairing` learns which.
 */
export function pskClientOptions(
  key: ClusterKey,
  onPairing: (pairing: string | undefined) => void = () => undefined,
): PskClientOptions {
  return {
    ciphers: PSK_CIPHERS,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    pskCallback: (hint) => {
      const pairing = pairingOfHint(hint);
      onPairing(pairing);
      if (pairing === undefined) return { psk: key.secret, identity: key.id };
      return { psk: deriveAgentKey(key, pairing).secret, identity: PAIRING_HINT_PREFIX + pairing };
    },
    // There is no certificate: the PSK handshake itself proves the peer holds the key.
    checkServerIdentity: () => undefined,
  };
}

/**
 * Whether a TLS error means the peers hold different keys. OpenSSL reports a
 * mismatched PSK identity as an alert, a mismatched secret as a bad MAC.
 */
export function isWrongKeyError(err: { code?: string; message?: string }): boolean {
  const text = `${err.code ?? ''} ${err.message ?? ''}`.toLowerCase();
  return (
    text.includes('psk') ||
    text.includes('bad record mac') ||
    text.includes('bad_record_mac') ||
    text.includes('decrypt') ||
    text.includes('handshake failure')
  );
}
