import WebSocket from 'ws';
import type { ClusterKey } from '../../shared/clusterKey';
import { ErrorCode, OctaskError } from '../../shared/errors';
import type { WsLike } from '../../shared/frameConnection';
import { MAX_FRAME_BYTES } from '../../shared/protocol';
import { isWrongKeyError, pskClientOptions } from '../../shared/tlsPsk';

/** Where an agent listens. */
export interface AgentAddress {
  host: string;
  port: number;
  /** false: plain WebSocket (an agent started with --insecure on loopback). */
  secure: boolean;
}

export function formatAddress(a: AgentAddress): string {
  const host = a.host.includes(':') ? `[${a.host}]` : a.host;
  return `${a.secure ? '' : 'ws://'}${host}:${a.port}`;
}

/**
 * Parses `host:port`, `[v6]:port`, `host` (default port) or `ws://host:port`
 * (plain, for an --insecure agent).
 */
export function parseAddress(text: string, defaultPort: number): AgentAddress {
  let rest = text.trim();
  let secure = true;
  if (rest.startsWith('ws://')) {
    secure = false;
    rest = rest.slice(5);
  } else if (rest.startsWith('wss://')) {
    rest = rest.slice(6);
  }
  rest = rest.replace(/\/$/, '');
  const m =
    /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(rest) ?? /^([^:[\]\s/]+)(?::(\d+))?$/.exec(rest);
  const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
  if (!m || !m[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new OctaskError(
      ErrorCode.BadRequest,
      `not an agent address: ${JSON.stringify(text)} (expected HOST:PORT)`,
    );
  }
  return { host: m[1], port, secure };
}

/** The pairing each paired agent's socket proved in its TLS handshake. */
const pairings = new WeakMap<WsLike, string>();

/**
 * The pairing an agent's connection proved (its key is derived for it), or
 * undefined for an agent that holds the cluster key itself. A paired agent's
 * hello must carry this name, so that no agent can pass for another.
 */
export function pairingOf(ws: WsLike): string | undefined {
  return pairings.get(ws);
}

/**
 * The dispatcher's only contact with `ws`: dials an agent and resolves with
 * the open socket, or rejects with E_WRONG_KEY or E_UNREACHABLE.
 */
export function dial(address: AgentAddress, key: ClusterKey, timeoutMs: number): Promise<WsLike> {
  const url = `${address.secure ? 'wss' : 'ws'}://${formatAddress({ ...address, secure: true })}/`;
  return new Promise((resolve, reject) => {
    // ws types checkServerIdentity as returning boolean; Node's TLS (which
    // receives these options) wants Error | undefined, which is what we give.
    let pairing: string | undefined;
    const tls = (address.secure
      ? pskClientOptions(key, (p) => (pairing = p))
      : {}) as unknown as WebSocket.ClientOptions;
    const ws = new WebSocket(url, {
      ...tls,
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: timeoutMs,
      // An all-zero mask, which ws then neither applies nor has the agent
      // undo: masking guards HTTP proxies against script-chosen bytes (RFC
      // 6455 §10.3), and our frames are TLS or loopback-only, never seen by
      // one. Unmasked, a sync's 20 MB is not XORed twice in JavaScript.
      generateMask: (mask: Buffer) => mask.fill(0),
    });
    const fail = (err: Error & { code?: string }): void => {
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
      if (address.secure && isWrongKeyError(err)) {
        reject(
          new OctaskError(
            ErrorCode.WrongKey,
            pairing === undefined
              ? `${formatAddress(address)} refused the TLS handshake: it does not hold this cluster key (key id ${key.id}). Use the same key file on both sides (octask key).`
              : `${formatAddress(address)} refused the TLS handshake: it is paired as ${pairing}, but not by this cluster key (key id ${key.id}), or its key file is damaged. Pair it again: run "octask key --pair ${pairing}" here and the line it prints on that device.`,
          ),
        );
      } else if (err.code === 'ECONNREFUSED') {
        // The host answered and nothing listens: the agent process is not running.
        reject(
          new OctaskError(
            ErrorCode.AgentDown,
            `nothing listens at ${formatAddress(address)} (ECONNREFUSED): the agent is not running`,
          ),
        );
      } else {
        reject(
          new OctaskError(
            ErrorCode.Unreachable,
            `cannot reach ${formatAddress(address)}: ${err.code ?? err.message}`,
          ),
        );
      }
    };
    ws.once('error', fail);
    ws.once('unexpected-response', (_req, res) => {
      fail(
        new Error(
          `answered HTTP ${res.statusCode} instead of opening a WebSocket; is it an octask-agent?`,
        ),
      );
    });
    ws.once('open', () => {
      ws.removeListener('error', fail);
      if (pairing !== undefined) pairings.set(ws, pairing);
      resolve(ws);
    });
  });
}
