import { Bonjour } from 'bonjour-service';
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

/** The agent's only contact with `bonjour-service`: publish `_octask._tcp` until stopped. */
export function advertise(ad: Advertisement, logger: Logger): { stop(): Promise<void> } {
  const bonjour = new Bonjour({}, (err: Error) => logger.warn('mDNS error', { err }));
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
  service.on('error', (err: Error) => logger.warn('mDNS publish failed', { err }));
  logger.info('advertising by mDNS', { type: `_${MDNS_SERVICE_TYPE}._tcp`, port: ad.port });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        bonjour.unpublishAll(() => {
          bonjour.destroy();
          resolve();
        });
      }),
  };
}
