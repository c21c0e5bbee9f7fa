import type { ClusterKey } from './clusterKey';

/**
 * TLS settings both sides use: TLS 1.2 (Node's PSK works for 1.2 only) with
 * an ECDHE-PSK suite, so there is forward secrecy and no certificate, and the
 * key never crosses the wire. The PSK identity is the key id.
 */
export const PSK_CIPHERS = 'ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES128-CBC-SHA256';
export const TLS_VERSION = 'TLSv1.2' as const;

export interface PskServerOptions {
  ciphers: string;
  minVersion: typeof TLS_VERSION;
  maxVersion: typeof TLS_VERSION;
  pskCallback: (socket: unknown, identity: string) => Buffer | null;
}

export interface PskClientOptions {
  ciphers: string;
  minVersion: typeof TLS_VERSION;
  maxVersion: typeof TLS_VERSION;
  pskCallback: () => { psk: Buffer; identity: string };
  checkServerIdentity: () => undefined;
}

export function pskServerOptions(key: ClusterKey): PskServerOptions {
  return {
    ciphers: PSK_CIPHERS,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    pskCallback: (_socket, identity) => (identity === key.id ? key.secret : null),
  };
}

export function pskClientOptions(key: ClusterKey): PskClientOptions {
  return {
    ciphers: PSK_CIPHERS,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    pskCallback: () => ({ psk: key.secret, identity: key.id }),
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
