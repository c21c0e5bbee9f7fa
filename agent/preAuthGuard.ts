import type { Logger } from '../shared/logger';

/**
 * What a peer without the key may cost the agent. Anchored on sshd's
 * `LoginGraceTime` and `MaxStartups`: a peer that has not proved it holds
 * the key gets a few seconds and one of a bounded number of slots.
 */
export interface PreAuthLimits {
  /** A connection must finish TLS and the WebSocket upgrade within this. */
  handshakeMs: number;
  /**
   * Connections still in their handshake; beyond this the oldest silent one
   * is dropped. A silent one holds a descriptor and a socket object only
   * (TLS state waits for the peer's first bytes), so this can be generous
   * while staying well under a Pi's default 1024 descriptors.
   */
  maxPending: number;
  /** Failed handshakes from one address within a window before it is backed off. */
  failuresBeforeBackoff: number;
  /** The first back-off; each further one from the same address doubles, up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Failures are counted, and reported in one line per address, per window. */
  windowMs: number;
  /** Addresses remembered at once, so many-address floods cannot grow the table without end. */
  maxAddresses: number;
}

export const DEFAULT_PRE_AUTH_LIMITS: PreAuthLimits = {
  handshakeMs: 5_000,
  maxPending: 512,
  failuresBeforeBackoff: 10,
  backoffMs: 2_000,
  maxBackoffMs: 60_000,
  windowMs: 60_000,
  maxAddresses: 10_000,
};

/** Why a handshake failed; the first of each window is logged with its details. */
export type HandshakeFailure = 'wrong_key' | 'tls' | 'timeout' | 'dropped' | 'closed';

interface AddressRecord {
  /** Failures in the current window, by reason. */
  failures: Partial<Record<HandshakeFailure, number>>;
  count: number;
  /** Connections turned away at once while backed off, this window. */
  refused: number;
  /** Whether this window's first failure was logged already. */
  logged: boolean;
  blockedUntil: number;
  /** How many back-offs in a row (the next one lasts backoffMs * 2^level). */
  level: number;
}

/**
 * Per-address accounting of failed handshakes: decides who is backed off and
 * turns a flood into one log line per address per window. Fed events by the
 * transport; owns no sockets and no timers, so it is tested with a fake clock.
 */
export class PreAuthGuard {
  private readonly addresses = new Map<string, AddressRecord>();

  constructor(
    readonly limits: PreAuthLimits,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether a new connection from `address` may start a handshake. */
  admit(address: string): boolean {
    const record = this.addresses.get(address);
    if (!record || record.blockedUntil <= this.now()) return true;
    record.refused++;
    return false;
  }

  /** A handshake from `address` failed. */
  failed(address: string, why: HandshakeFailure, details: Record<string, unknown> = {}): void {
    const record = this.recordOf(address);
    record.failures[why] = (record.failures[why] ?? 0) + 1;
    record.count++;
    if (!record.logged) {
      record.logged = true;
      const text =
        why === 'wrong_key'
          ? 'rejected a connection: the peer does not hold this cluster key'
          : 'a handshake failed';
      this.logger.warn(text, { peer: address, why, ...details });
    }
    if (record.count % this.limits.failuresBeforeBackoff !== 0) return;
    const ms = Math.min(this.limits.maxBackoffMs, this.limits.backoffMs * 2 ** record.level);
    record.level++;
    record.blockedUntil = this.now() + ms;
    this.logger.warn(`backing off ${address} for ${ms / 1000} s`, {
      peer: address,
      failed: record.count,
    });
  }

  /** Whether `address` is backed off right now. */
  isBackedOff(address: string): boolean {
    return (this.addresses.get(address)?.blockedUntil ?? 0) > this.now();
  }

  /** Addresses with a record; bounded by maxAddresses. */
  get tracked(): number {
    return this.addresses.size;
  }

  /**
   * Ends a window: one line per address that failed more than the one
   * already logged, then forgets addresses that are quiet and not backed off.
   */
  flush(): void {
    const now = this.now();
    const window = describeWindow(this.limits.windowMs);
    for (const [address, record] of this.addresses) {
      if (record.count > 1 || record.refused > 0) {
        this.logger.warn(
          `${record.count} failed handshakes from ${address} in the last ${window}` +
            (record.refused > 0 ? `, ${record.refused} connections refused while backed off` : ''),
          { peer: address, failed: record.count, refused: record.refused, ...record.failures },
        );
      }
      const quiet = record.count === 0 && record.refused === 0;
      if (quiet && record.blockedUntil <= now) {
        this.addresses.delete(address);
        continue;
      }
      record.failures = {};
      record.count = 0;
      record.refused = 0;
      record.logged = false;
      // A window without failures forgives one step of back-off.
      if (quiet) record.level = Math.max(0, record.level - 1);
    }
  }

  private recordOf(address: string): AddressRecord {
    let record = this.addresses.get(address);
    if (record) return record;
    if (this.addresses.size >= this.limits.maxAddresses) {
      // Forget the longest-known address: the table stays bounded whatever the flood.
      const oldest = this.addresses.keys().next().value;
      if (oldest !== undefined) this.addresses.delete(oldest);
    }
    record = { failures: {}, count: 0, refused: 0, logged: false, blockedUntil: 0, level: 0 };
    this.addresses.set(address, record);
    return record;
  }
}

function describeWindow(ms: number): string {
  if (ms === 60_000) return 'minute';
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
