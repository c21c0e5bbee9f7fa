import type { FrameConnection } from './frameConnection';

/** Bytes of file content per `blob` frame (well under MAX_FRAME_BYTES). */
export const BLOB_CHUNK = 1024 * 1024;

/** Pause sending above this many unsent bytes, so a big transfer cannot flood memory. */
const HIGH_WATER = 4 * 1024 * 1024;

/** A blob's bytes as chunks; the caller opens the file (this module does no I/O). */
export interface BlobSource {
  size: number;
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** Blobs opened ahead of the one being sent, so that reading overlaps sending. */
const READ_AHEAD = 8;

/**
 * Sends blobs as `blob` frames under one `sync` id, in order, with
 * backpressure. Resolves with the hashes that could not be read (the caller
 * reports them); the receiver checks every blob against its hash.
 */
export async function sendBlobs(
  connection: FrameConnection,
  sync: string,
  hashes: readonly string[],
  open: (hash: string) => Promise<BlobSource | undefined>,
  progress?: (bytes: number) => void,
): Promise<string[]> {
  const missing: string[] = [];
  const opened = new Map<number, Promise<BlobSource | undefined>>();
  const openAt = (i: number): void => {
    const hash = hashes[i];
    if (hash !== undefined && !opened.has(i))
      opened.set(
        i,
        open(hash).catch(() => undefined),
      );
  };
  for (let i = 0; i < hashes.length; i++) {
    const hash = hashes[i] as string;
    for (let j = i; j < i + READ_AHEAD; j++) openAt(j);
    const source = await opened.get(i);
    opened.delete(i);
    if (!source) {
      missing.push(hash);
      continue;
    }
    let offset = 0;
    try {
      for await (const data of source.chunks) {
        if (connection.isClosed) return missing;
        if (offset + data.byteLength > source.size) break;
        const message = { t: 'blob', sync, hash, size: source.size, offset, data } as const;
        if (connection.buffered > HIGH_WATER) {
          // Over the mark: wait until this frame, and so all before it, is written.
          await new Promise<void>((resolve) => connection.send(message, () => resolve()));
        } else {
          connection.send(message);
        }
        offset += data.byteLength;
        progress?.(data.byteLength);
      }
    } catch {
      // Read failed midway: the receiver sees a short blob; say so.
    }
    if (offset !== source.size) missing.push(hash);
  }
  return missing;
}
