import { networkInterfaces } from 'node:os';
import { Bonjour } from 'bonjour-service';
import type { Service } from 'bonjour-service';
import type { Logger } from '../shared/logger';
import { MDNS_SERVICE_TYPE } from '../shared/protocol';

/** What an agent tells the LAN about itself; never the key, only its id. */
export interface Advertisement {
  id: string;
  name: string;
  port: number;
  protocol: number;
  os: string;
  arch: string;
  cpus: number;
  keyId: string;
  secure: boolean;
}

export interface AdvertiseOptions {
  /** First retry after a failure; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
}

/** The parts of bonjour-service's multicast-dns socket that can fail outside any call of ours. */
interface MulticastDns {
  update?: () => void;
  on(event: 'error' | 'warning', listener: (err: Error) => void): unknown;
}

const STOP_WAIT_MS = 1000;

/**
 * The agent's only contact with `bonjour-service`: publish `_octask._tcp`
 * until stopped. mDNS is a convenience, never a reason to stop serving: on
 * Android `os.networkInterfaces()` throws (errno 13), and the library calls
 * it from its own timers and socket events, where a throw would end the
 * process. Every such failure is caught here, warned about once (with what
 * the user can do instead), and retried in the background with backoff.
 */
export function advertise(
  ad: Advertisement,
  logger: Logger,
  options: AdvertiseOptions = {},
): { stop(): Promise<void> } {
  const firstRetry = options.retryMs ?? 2000;
  const maxRetry = options.maxRetryMs ?? 5 * 60_000;
  let current: { bonjour: Bonjour; dead: boolean } | undefined;
  let retryMs = firstRetry;
  let retryTimer: NodeJS.Timeout | undefined;
  let failures = 0;
  let stopped = false;

  const fail = (instance: { bonjour: Bonjour; dead: boolean } | undefined, err: unknown): void => {
    if (stopped || instance?.dead) return;
    failures++;
    if (instance) {
      instance.dead = true;
      if (current === instance) current = undefined;
      // Later: the library may be in the middle of its own handler.
      setImmediate(() => destroyQuietly(instance.bonjour));
    }
    const fields = { err, retryInMs: retryMs };
    if (failures === 1) {
      logger.warn(
        'mDNS advertising failed, so dispatchers will not find this device by mDNS: list it by address on the dispatcher (--agent HOST:PORT, or the octask.agents setting). The agent serves on and retries mDNS in the background.',
        fields,
      );
    } else {
      logger.debug('mDNS advertising failed again', { ...fields, failures });
    }
    retryTimer = setTimeout(start, retryMs);
    retryTimer.unref();
    retryMs = Math.min(retryMs * 2, maxRetry);
  };

  const start = (): void => {
    retryTimer = undefined;
    if (stopped) return;
    let instance: { bonjour: Bonjour; dead: boolean } | undefined;
    try {
      // Throws on Termux; better found here than inside the library's socket handler.
      networkInterfaces();
      const bonjour = new Bonjour({}, (err: Error) => fail(instance, err));
      instance = { bonjour, dead: false };
      guardSocket(bonjour, (err) => fail(instance, err), logger);
      const service = bonjour.publish({
        name: `${ad.name}-${ad.id.slice(0, 6)}`,
        type: MDNS_SERVICE_TYPE,
        port: ad.port,
        txt: {
          id: ad.id,
          name: ad.name,
          proto: String(ad.protocol),
          os: ad.os,
          arch: ad.arch,
          cpus: String(ad.cpus),
          kid: ad.keyId,
          tls: ad.secure ? '1' : '0',
        },
      });
      guardRecords(service, (err) => fail(instance, err));
      service.on('error', (err: Error) => fail(instance, err));
    } catch (err) {
      fail(instance, err);
      return;
    }
    current = instance;
    retryMs = firstRetry;
    logger.info('advertising by mDNS', {
      type: `_${MDNS_SERVICE_TYPE}._tcp`,
      port: ad.port,
      ...(failures > 0 ? { afterFailures: failures } : {}),
    });
  };

  start();
  return {
    stop: async () => {
      stopped = true;
      if (retryTimer) clearTimeout(retryTimer);
      const instance = current;
      current = undefined;
      if (!instance || instance.dead) return;
      instance.dead = true;
      // Goodbye packets are a courtesy: never let them hold up shutdown.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, STOP_WAIT_MS);
        try {
          instance.bonjour.unpublishAll(() => {
            clearTimeout(timer);
            resolve();
          });
        } catch {
          clearTimeout(timer);
          resolve();
        }
      });
      destroyQuietly(instance.bonjour);
    },
  };
}

/**
 * multicast-dns emits 'error' with no listener (EACCES, EADDRINUSE) and reads
 * the interfaces on 'listening' and every 5 s through `update`, which it
 * looks up on itself at each call: wrapping it catches those throws.
 */
function guardSocket(bonjour: Bonjour, onFailure: (err: unknown) => void, logger: Logger): void {
  const mdns = (bonjour as unknown as { server?: { mdns?: MulticastDns } }).server?.mdns;
  if (!mdns) return;
  mdns.on('error', onFailure);
  mdns.on('warning', (err) => logger.debug('mDNS warning', { err }));
  const update = mdns.update;
  if (typeof update !== 'function') return;
  let failed = false;
  mdns.update = () => {
    if (failed) return;
    try {
      update();
    } catch (err) {
      failed = true;
      onFailure(err);
    }
  };
}

/** A service's records list the interfaces too; it is called from the library's timers. */
function guardRecords(service: Service, onFailure: (err: unknown) => void): void {
  const records = service.records.bind(service);
  service.records = () => {
    try {
      return records();
    } catch (err) {
      onFailure(err);
      return [];
    }
  };
}

function destroyQuietly(bonjour: Bonjour): void {
  try {
    bonjour.destroy();
  } catch {
    // already closed, or its socket never opened
  }
}
