import { createHash } from 'node:crypto';
import { manifestDigest } from '../../../shared/manifestDigest';
import type { EntryColumns } from '../../../shared/manifestColumns';
import type { ManifestDelta } from '../../../shared/manifestDelta';
import type { ManifestEntry } from '../../../shared/protocol';

/** A workspace ready to sync: its manifest, and what a sync needs to send it. */
export interface PreparedWorkspace {
  /** Names the agents' copy: stable for this machine and folder. */
  id: string;
  root: string;
  /**
   * The manifest. Where `loadEntries` is given (the CLI's watcher answered
   * with the digest only), reading it before that resolved is a bug and throws.
   */
  entries: ManifestEntry[];
  /** How many entries the manifest has (known before they are loaded). */
  entryCount: number;
  /** Fetches `entries` when they are not there yet; a sync that needs them awaits it first. */
  loadEntries?: () => Promise<void>;
  preserve: string[];
  /** Lay out a fresh copy: remove what tasks made there (SyncMessage.clean). */
  clean: boolean;
  /** Identifies this exact manifest (and preserve list, and clean), so an agent that has it is not asked again. */
  digest: string;
  /** The entries' own digest (shared/manifestDigest.ts): what `syncCheck` asks an agent about. */
  entriesDigest: string;
  /** Bytes of all files in the manifest. */
  bytes: number;
  /** Contents read while hashing and kept, by hash: sent as they are instead of read again. */
  contents?: ReadonlyMap<string, Buffer>;
  /** The entries as columns, when they came so (the CLI's watcher): a sync sends them as they are. */
  columns?: EntryColumns;
  /**
   * What differs from an earlier manifest of this workspace, by its
   * entriesDigest, when that one is remembered (the editor's watch, the
   * CLI's watcher): an agent that holds it is sent only the difference.
   */
  deltaFrom?: (digest: string) => ManifestDelta | undefined;
  /** The digests `deltaFrom` may know, newest first (for the CLI's watcher to send deltas ahead). */
  bases?: readonly string[];
  /** An earlier manifest of this workspace by its entriesDigest, while it is remembered. */
  earlier?: (digest: string) => readonly ManifestEntry[] | undefined;
}

/** The digest of a preparation: its entries' digest, with its preserve list and clean flag. */
export function workspaceDigest(
  entriesDigest: string,
  preserve: readonly string[],
  clean: boolean,
): string {
  return createHash('sha256')
    .update(`${entriesDigest}\0preserve\0${preserve.join('\0')}\0clean\0${clean}`)
    .digest('hex');
}

/**
 * Where each of `hashes` can be read locally (the absolute path below
 * `root` of a file with that content) and its size. Found by one pass over
 * entries when an agent asks, not kept for every file: most syncs ask for a few.
 */
export function sourcesOf(
  entries: readonly ManifestEntry[],
  root: string,
  hashes: readonly string[],
): Map<string, { path: string; size: number }> {
  const wanted = new Set(hashes);
  const found = new Map<string, { path: string; size: number }>();
  for (const e of entries)
    if ('hash' in e && wanted.has(e.hash) && !found.has(e.hash))
      found.set(e.hash, { path: `${root}/${e.path}`, size: e.size });
  return found;
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
  columns?: EntryColumns,
): PreparedWorkspace {
  let bytes = 0;
  for (const e of entries) if ('hash' in e) bytes += e.size;
  const entriesDigest = manifestDigest(entries);
  const digest = workspaceDigest(entriesDigest, preserve, clean);
  return {
    id,
    root,
    entries,
    entryCount: entries.length,
    preserve,
    clean,
    digest,
    entriesDigest,
    bytes,
    ...(contents && contents.size > 0 ? { contents } : {}),
    ...(columns ? { columns } : {}),
  };
}
