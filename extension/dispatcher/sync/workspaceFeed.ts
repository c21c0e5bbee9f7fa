import type { ManifestEntry } from '../../../shared/protocol';
import type { PreparedWorkspace } from './preparedWorkspace';

/** What a feed is of, known before its first file is hashed. */
export interface FeedHeader {
  id: string;
  root: string;
  preserve: readonly string[];
  clean: boolean;
  /** The contents read while hashing and kept (HashCache.kept), by hash; filled as hashing goes. */
  contents: ReadonlyMap<string, Buffer>;
}

/**
 * A workspace while it is being hashed: its entries so far, in the order
 * they were hashed, then the prepared workspace (or why there is none).
 * A first sync to an agent with no copy streams from it (SyncSender), so
 * that the agent writes files while the rest are hashed. One owner writes
 * it (prepareWorkspaceAt); any number of syncs read it.
 */
export class WorkspaceFeed {
  private opened: FeedHeader | undefined;
  private readonly hashed: ManifestEntry[] = [];
  private result: PreparedWorkspace | Error | undefined;
  private readonly listeners = new Set<() => void>();

  /** Known once hashing began. */
  get header(): FeedHeader | undefined {
    return this.opened;
  }

  /** Every entry hashed so far (big files and links come last). */
  get entries(): readonly ManifestEntry[] {
    return this.hashed;
  }

  /** The prepared workspace once hashing ended (its entries are `entries`, sorted), or the error it ended with. */
  get ended(): PreparedWorkspace | Error | undefined {
    return this.result;
  }

  /** Called on opening, after each batch of entries, and at the end; returns its removal. */
  on(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  open(header: FeedHeader): void {
    this.opened = header;
    this.tell();
  }

  /** One more entry; readers hear of it at the next `flush`. */
  add(entry: ManifestEntry): void {
    if (this.result === undefined) this.hashed.push(entry);
  }

  /** Tells readers of the entries added since the last flush. */
  flush(): void {
    this.tell();
  }

  /** Hashing is over: the prepared workspace, or the error that ended it. */
  end(result: PreparedWorkspace | Error): void {
    if (this.result !== undefined) return;
    this.result = result;
    this.tell();
    this.listeners.clear();
  }

  private tell(): void {
    for (const listener of [...this.listeners]) listener();
  }
}
