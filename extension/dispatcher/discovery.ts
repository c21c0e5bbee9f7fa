import { isIPv4 } from 'node:net';
import { Bonjour } from 'bonjour-service';
import type { Logger } from '../../shared/logger';
import { MDNS_SERVICE_TYPE } from '../../shared/protocol';

/** An agent as its mDNS advertisement describes it (unauthenticated: a hint to dial). */
export interface DiscoveredAgent {
  /** The DNS-SD instance name, unique on the LAN. */
  instance: string;
  id: string;
  name: string;
  host: string;
  port: number;
  protocol: number;
  keyId: string;
  secure: boolean;
}

export interface DiscoveryEvents {
  up(agent: DiscoveredAgent): void;
  down(instance: string): void;
}

/** The dispatcher's only contact with `bonjour-service`: browse `_octask._tcp`. */
export function browseAgents(events: DiscoveryEvents, logger: Logger): { stop(): void } {
  const bonjour = new Bonjour({}, (err: Error) => logger.warn('mDNS error', { err }));
  const browser = bonjour.find({ type: MDNS_SERVICE_TYPE });
  browser.on('up', (service) => {
    const txt = (service.txt ?? {}) as Record<string, unknown>;
    const str = (k: string): string =>
      typeof txt[k] === 'string' ? (txt[k] as string) : String(txt[k] ?? '');
    // Prefer the address the answer came from, then any IPv4 one: link-local
    // IPv6 needs a zone id that the advertisement does not carry.
    const addresses = service.addresses ?? [];
    const host =
      service.referer?.address ?? addresses.find((a) => isIPv4(a)) ?? addresses[0] ?? service.host;
    if (!host || !service.port) return;
    const agent: DiscoveredAgent = {
      instance: service.fqdn || service.name,
      id: str('id'),
      name: str('name') || service.name,
      host,
      port: service.port,
      protocol: Number(str('proto')) || 0,
      keyId: str('kid'),
      secure: str('tls') !== '0',
    };
    logger.debug('mDNS: agent found', { ...agent });
    events.up(agent);
  });
  browser.on('down', (service) => events.down(service.fqdn || service.name));
  return {
    stop() {
      browser.stop();
      bonjour.destroy();
    },
  };
}
