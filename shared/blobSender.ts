import { encodeBlobs, encodeMessage } from './codec';
import type { FrameConnection } from './frameConnection';
import type { BlobMessage, BlobsMessage } from './protocol';

/** Bytes of file content per `blob` frame (well under MAX_FRAME_BYTES). */
export const BLOB_CHUNK = 1024 * 1024;

/**
 * Whole contents up to this size share `blobs` frames, up to BATCH_BYTES and
 * BATCH_COUNT a frame. A frame costs both sides a fixed amount (encode,
 * WebSocket and TLS framing, decode, validation, a turn of the event loop),
 * which for a typical source file is more than its bytes cost.
 */
const BATCH_ITEM_MAX = 256 * 1024;
const BATCH_BYTES = BLOB_CHUNK;
const BATCH_COUNT = 1024;

/** Pause sending above this many unsent bytes, so a big transfer cannot flood memory. */
const HIGH_WATER = 4 * 1024 * 1024;

/**
 * A blob's bytes: all of them in memory (`data`), or as chunks read as they
 * are sent. The caller opens the file (this module does no I/O).
 */
export type BlobSource =
  | { size: number; data: Uint8Array }
  | { size: number; chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> };

/** Blobs opened ahead of the one being sent, so that reading overlaps sending. */
const READ_AHEAD = 8;

/**
 * Sends blobs under one `sync` id, in order, with backpressure: small whole
 * ones many to a `blobs` frame, others as `blob` chunks. Resolves with the
 * hashes that could not be read (the caller reports them); the receiver
 * checks every blob against its hash.
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
  const batch = {
    hashes: [] as string[],
    sizes: [] as number[],
    parts: [] as Uint8Array[],
    bytes: 0,
  };
  const send = async (frame: Buffer): Promise<void> => {
    if (connection.buffered > HIGH_WATER) {
      // Over the mark: wait until this frame, and so all before it, is written.
      await new Promise<void>((resolve) => connection.sendFrame(frame, () => resolve()));
    } else {
      connection.sendFrame(frame);
    }
  };
  const flush = async (): Promise<void> => {
    if (batch.hashes.length === 0) return;
    const frame = encodeBlobs(sync, batch.hashes, batch.sizes, batch.parts, batch.bytes);
    const bytes = batch.bytes;
    Object.assign(batch, { hashes: [], sizes: [], parts: [], bytes: 0 });
    await send(frame);
    progress?.(bytes);
  };
  for (let i = 0; i < hashes.length; i++) {
    const hash = hashes[i] as string;
    for (let j = i; j < i + READ_AHEAD; j++) openAt(j);
    const source = await opened.get(i);
    opened.delete(i);
    if (connection.isClosed) return missing;
    if (!source) {
      missing.push(hash);
      continue;
    }
    if (
      'data' in source &&
      source.data.byteLength === source.size &&
      source.size <= BATCH_ITEM_MAX
    ) {
      if (batch.bytes + source.size > BATCH_BYTES || batch.hashes.length >= BATCH_COUNT)
        await flush();
      batch.hashes.push(hash);
      batch.sizes.push(source.size);
      batch.parts.push(source.data);
      batch.bytes += source.size;
      continue;
    }
    // Sent in order: what is batched goes first.
    await flush();
    const chunks = 'data' in source ? [source.data] : source.chunks;
    let offset = 0;
    try {
      for await (const data of chunks) {
        if (connection.isClosed) return missing;
        if (offset + data.byteLength > source.size) break;
        await send(encodeMessage({ t: 'blob', sync, hash, size: source.size, offset, data }));
        offset += data.byteLength;
        progress?.(data.byteLength);
      }
    } catch {
      // Read failed midway: the receiver sees a short blob; say so.
    }
    if (offset !== source.size) missing.push(hash);
  }
  if (!connection.isClosed) await flush();
  return missing;
}

/** The contents of a `blobs` frame as the `blob` frames (offset 0, whole) they stand for. */
export function blobsOf(message: BlobsMessage): BlobMessage[] {
  const out: BlobMessage[] = [];
  let at = 0;
  message.hashes.forEach((hash, i) => {
    const size = message.sizes[i] as number;
    out.push({
      t: 'blob',
      sync: message.sync,
      hash,
      size,
      offset: 0,
      data: message.data.subarray(at, at + size),
    });
    at += size;
  });
  return out;
}
