import { createHash, hash } from 'node:crypto';
import type { BinaryLike } from 'node:crypto';

/**
 * The SHA-256 of `data`, as hex. Node's one-shot `crypto.hash` (20.12 and
 * later) costs about half of a Hash object for a small file, which is most
 * of what a sync hashes; an older Node (an editor's own) gets the object.
 */
export const sha256Hex: (data: BinaryLike) => string =
  typeof hash === 'function'
    ? (data) => hash('sha256', data, 'hex')
    : (data) => createHash('sha256').update(data).digest('hex');
