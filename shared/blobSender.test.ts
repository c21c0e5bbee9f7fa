import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BLOB_CHUNK, blobsOf, sendBlobs } from './blobSender';
import type { BlobSource } from './blobSender';
import { decodeMessage } from './codec';
import type { WsLike } from './frameConnection';
import { FrameConnection } from './frameConnection';
import type { BlobMessage, Message } from './protocol';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A connection whose socket keeps every frame it is given, decoded as the peer would. */
function recording(): { connection: FrameConnection; frames: Message[] } {
  const frames: Message[] = [];
  const ws: WsLike = {
    bufferedAmount: 0,
    send: (data, cb) => {
      frames.push(decodeMessage(data));
      cb?.();
    },
    close: () => undefined,
    terminate: () => undefined,
    ping: () => undefined,
    pause: () => undefined,
    resume: () => undefined,
    on: () => undefined,
  };
  const connection = new FrameConnection(ws, { message: () => undefined, closed: () => undefined });
  return { connection, frames };
}

/** Every blob the frames carry, put back together by hash (as a receiver would). */
function contents(frames: Message[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const blobs: BlobMessage[] = frames.flatMap((f) =>
    f.t === 'blobs' ? blobsOf(f) : f.t === 'blob' ? [f] : [],
  );
  for (const b of blobs)
    out.set(b.hash, Buffer.concat([out.get(b.hash) ?? Buffer.alloc(0), b.data]));
  return out;
}

describe('sendBlobs', () => {
  const small = [1, 2, 3, 4, 5].map((i) => Buffer.from(`content ${i}\n`.repeat(i * 10)));
  const big = Buffer.alloc(BLOB_CHUNK + 10, 7);
  const all = [...small.slice(0, 3), big, ...small.slice(3)];
  const byHash = new Map(all.map((b) => [sha(b), b]));

  it('sends small whole contents many to a frame, big ones in chunks, in order', async () => {
    const { connection, frames } = recording();
    let progressed = 0;
    const missing = await sendBlobs(
      connection,
      's1',
      [...byHash.keys()],
      async (hash) => {
        const data = byHash.get(hash) as Buffer;
        return data === big
          ? { size: data.length, chunks: [data.subarray(0, BLOB_CHUNK), data.subarray(BLOB_CHUNK)] }
          : { size: data.length, data };
      },
      (n) => (progressed += n),
    );
    assert.deepEqual(missing, []);
    assert.deepEqual(
      frames.map((f) => (f.t === 'blobs' ? `blobs×${f.hashes.length}` : f.t)),
      ['blobs×3', 'blob', 'blob', 'blobs×2'],
    );
    assert.deepEqual(contents(frames), byHash);
    assert.ok(frames.every((f) => 'sync' in f && f.sync === 's1'));
    assert.equal(
      progressed,
      all.reduce((n, b) => n + b.length, 0),
    );
  });

  it('reports what could not be opened or was short, and sends the rest', async () => {
    const { connection, frames } = recording();
    const [a, b, c] = small as [Buffer, Buffer, Buffer];
    const missing = await sendBlobs(connection, 's2', [sha(a), sha(b), sha(c)], async (hash) => {
      if (hash === sha(a)) return undefined;
      if (hash === sha(b)) throw new Error('EACCES');
      return { size: c.length + 1, chunks: [c] } satisfies BlobSource;
    });
    assert.deepEqual(missing, [sha(a), sha(b), sha(c)]);
    // The short one went out as a chunk the receiver will find short: it fails the sync.
    assert.deepEqual(
      frames.map((f) => f.t),
      ['blob'],
    );
  });

  it('starts a new frame before one would pass 1 MiB', async () => {
    const { connection, frames } = recording();
    const pieces = Array.from({ length: 9 }, (_, i) => Buffer.alloc(200 * 1024, i));
    await sendBlobs(connection, 's3', pieces.map(sha), async (hash) => {
      const data = pieces.find((p) => sha(p) === hash) as Buffer;
      return { size: data.length, data };
    });
    const counts = frames.map((f) => (f.t === 'blobs' ? f.hashes.length : 0));
    assert.deepEqual(counts, [5, 4]);
    assert.equal(contents(frames).size, 9);
  });
});
