import { createHash } from 'node:crypto';
import { manifestDigest } from '../../../shared/manifestDigest';
import type { ManifestEntry } from '../../../shared/protocol';

/** A workspace ready to sync: its manifest, and where each content hash can be read locally. */
export interface PreparedWorkspace {
  /** Names the agents' copy: stable for this machine and folder. */
  id: string;
  root: string;
  entries: ManifestEntry[];
  preserve: string[];
  /** Lay out a fresh copy: remove what tasks made there (SyncMessage.clean). */
  clean: boolean;
  /** Content hash → absolute local path of a file with that content. */
  sources: Map<string, string>;
  /** Identifies this exact manifest (and preserve list, and clean), so an agent that has it is not asked again. */
  digest: string;
  /** The entries' own digest (shared/manifestDigest.ts): what `syncCheck` asks an agent about. */
  entriesDigest: string;
  /** Bytes of all files in the manifest. */
  bytes: number;
  /** Contents read while hashing and kept, by hash: sent as they are instead of read again. */
  contents?: ReadonlyMap<string, Buffer>;
}

/** A workspace id from the machine and folder: two checkouts never share an agent's copy. */
export function workspaceId(host: string, root: string): string {
  const base = root.split(/[\\/]/).filter(Boolean).pop() ?? 'workspace';
  const safe = base.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40) || 'workspace';
  return `${safe}-${createHash('sha256').update(`${host}\0${root}`).digest('hex').slice(0, 12)}`;
}

export function prepareWorkspace(
  id: string,
  root: string,
  entries: ManifestEntry[],
  preserve: string[],
  clean = false,
  contents?: ReadonlyMap<string, Buffer>,
): PreparedWorkspace {
  const sources = new Map<string, string>();
  let bytes = 0;
  for (const e of entries) {
    if (!('hash' in e)) continue;
    sources.set(e.hash, `${root}/${e.path}`);
    bytes += e.size;
  }
  const entriesDigest = manifestDigest(entries);
  const digest = createHash('sha256')
    .update(`${entriesDigest}\0preserve\0${preserve.join('\0')}\0clean\0${clean}`)
    .digest('hex');
  return {
    id,
    root,
    entries,
    preserve,
    clean,
    sources,
    digest,
    entriesDigest,
    bytes,
    ...(contents && contents.size > 0 ? { contents } : {}),
  };
}
