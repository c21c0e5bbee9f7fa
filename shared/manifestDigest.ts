import { createHash } from 'node:crypto';
import type { ManifestEntry } from './manifest';

/**
 * Names one exact manifest: its paths, contents, modes and links, in order.
 * The dispatcher asks an agent whether its copy was laid out from this
 * digest (`syncCheck`), and the agent computes the same from the entries it
 * lays out, so the rule lives here, once.
 */
export function manifestDigest(entries: readonly ManifestEntry[]): string {
  const digest = createHash('sha256');
  for (const e of entries) {
    if ('hash' in e) digest.update(`${e.path}\0${e.hash}\0${e.mode}\n`);
    else digest.update(`${e.path}\0->${e.link}\n`);
  }
  return digest.digest('hex');
}
