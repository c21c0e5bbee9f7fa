import type { ManifestEntry } from '../../../shared/manifest';
import { manifestDelta } from '../../../shared/manifestDelta';
import type { PreparedWorkspace } from './preparedWorkspace';

/** Manifests a workspace's history keeps: the last few, since agents synced at different times hold different ones. */
const KEEP = 4;

/**
 * The last few manifests one workspace was prepared as, by entriesDigest:
 * the bases a later sync can send its difference from, when an agent says
 * its copy holds one of them (protocol 6's `syncStale.base`).
 */
export class ManifestHistory {
  /** Oldest first. */
  private readonly manifests = new Map<string, readonly ManifestEntry[]>();

  /** Gives `workspace` its `deltaFrom` and `bases` from this history, then remembers it. */
  attach(workspace: PreparedWorkspace): PreparedWorkspace {
    const bases = [...this.manifests.keys()].reverse();
    const { entries } = workspace;
    workspace.bases = bases.filter((d) => d !== workspace.entriesDigest);
    workspace.earlier = (digest) => this.manifests.get(digest);
    workspace.deltaFrom = (digest) => {
      const base = this.manifests.get(digest);
      return base && manifestDelta(base, entries);
    };
    this.manifests.delete(workspace.entriesDigest);
    this.manifests.set(workspace.entriesDigest, entries);
    for (const digest of this.manifests.keys()) {
      if (this.manifests.size <= KEEP) break;
      this.manifests.delete(digest);
    }
    return workspace;
  }
}
