import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { FrameConnection } from '../shared/frameConnection';
import { BLOB_CHUNK, sendBlobs as sendBlobFrames } from '../shared/blobSender';

/** Sends the files behind `hashes` (looked up in `paths`) as blobs of `sync`; resolves with those it could not. */
export function sendBlobs(
  connection: FrameConnection,
  sync: string,
  hashes: readonly string[],
  paths: ReadonlyMap<string, string>,
): Promise<string[]> {
  return sendBlobFrames(connection, sync, hashes, async (hash) => {
    const path = paths.get(hash);
    if (!path) return undefined;
    const { size } = await stat(path);
    return { size, chunks: createReadStream(path, { highWaterMark: BLOB_CHUNK }) };
  });
}
