import { Packr } from 'msgpackr';
import { ErrorCode, OctaskError } from './errors';
import { toColumns } from './manifestColumns';
import type { Message, OutputStream } from './protocol';
import { MAX_FRAME_BYTES } from './protocol';
import { validateMessage } from './validate';

// Plain maps on the wire (no msgpackr record extension), so any msgpack
// implementation can speak the protocol.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** Encodes one message into one frame (a manifest as columns: see shared/manifestColumns.ts). */
export function encodeMessage(message: Message): Buffer {
  if (message.t === 'sync') {
    const { entries, columns, ...rest } = message;
    return packr.pack({ ...rest, columns: columns ?? toColumns(entries) });
  }
  return packr.pack(message);
}

/**
 * Encodes an `output` message, the one frame type on the hot path. The bytes
 * are the same map encodeMessage would give (its four small fields, then
 * `data` as bin 32), but built in one exactly sized buffer: msgpackr packs
 * into shared slabs, and a queued frame would otherwise pin a whole slab.
 */
export function encodeOutput(
  task: string,
  seq: number,
  stream: OutputStream,
  data: Uint8Array,
): Buffer {
  return withData(packr.pack({ t: 'output', task, seq, stream }), 4, [data], data.byteLength);
}

/**
 * Encodes a `blobs` message from its contents as they are, copied once
 * into the frame (a Buffer.concat, then msgpackr's copy, would be two
 * copies of every byte a first sync sends).
 */
export function encodeBlobs(
  sync: string,
  hashes: string[],
  sizes: number[],
  parts: readonly Uint8Array[],
  bytes: number,
): Buffer {
  return withData(packr.pack({ t: 'blobs', sync, hashes, sizes }), 4, parts, bytes);
}

/**
 * `head`, a packed map of `fields` entries, with one entry more: `data`,
 * the bytes of `parts` (`bytes` in all) as bin 32, in one exactly sized
 * buffer. msgpackr packs into shared slabs, and a queued frame would
 * otherwise pin a whole slab.
 */
function withData(
  head: Buffer,
  fields: number,
  parts: readonly Uint8Array[],
  bytes: number,
): Buffer {
  if (parts.reduce((n, part) => n + part.byteLength, 0) !== bytes)
    throw new Error('the parts do not add up to their bytes');
  const out = Buffer.allocUnsafe(head.length + DATA_KEY.length + 5 + bytes);
  head.copy(out);
  // The same map, one entry more: a fixmap, or map 16 (which msgpackr uses).
  if (head[0] === 0x80 + fields && fields < 15) out[0] = 0x80 + fields + 1;
  else if (head[0] === 0xde && head.readUInt16BE(1) === fields) out.writeUInt16BE(fields + 1, 1);
  else throw new Error('unexpected msgpack map header');
  let at = head.length + DATA_KEY.copy(out, head.length);
  out[at] = 0xc6; // bin 32
  out.writeUInt32BE(bytes, at + 1);
  at += 5;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** The msgpack string "data" (fixstr of 4). */
const DATA_KEY = Buffer.from([0xa4, 0x64, 0x61, 0x74, 0x61]);

/**
 * Decodes and validates one frame. Throws an OctaskError with a stable code
 * for anything a peer should not have sent.
 */
export function decodeMessage(frame: Uint8Array): Message {
  if (frame.byteLength > MAX_FRAME_BYTES) {
    throw new OctaskError(
      ErrorCode.FrameTooLarge,
      `frame of ${frame.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`,
    );
  }
  let value: unknown;
  try {
    value = packr.unpack(frame);
  } catch (err) {
    throw new OctaskError(
      ErrorCode.FrameMalformed,
      `frame is not valid msgpack: ${(err as Error).message}`,
    );
  }
  return validateMessage(value);
}
