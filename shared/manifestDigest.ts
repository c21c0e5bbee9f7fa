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
  // Hashed a few hundred lines at a time: one update per entry spends more
  // on the call into the hash than on hashing, for the same bytes.
  let lines = '';
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as ManifestEntry;
    lines += 'hash' in e ? `${e.path}\0${e.hash}\0${e.mode}\n` : `${e.path}\0->${e.link}\n`;
    if (i % DIGEST_BATCH === DIGEST_BATCH - 1) {
      digest.update(lines);
      lines = '';
    }
  }
  return digest.update(lines).digest('hex');
}

const DIGEST_BATCH = 256;
