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
  const head = packr.pack({ t: 'output', task, seq, stream });
  const out = Buffer.allocUnsafe(head.length + DATA_KEY.length + 5 + data.byteLength);
  head.copy(out);
  // The same map, one entry more: fixmap 0x84, or map 16 (which msgpackr uses).
  if (head[0] === 0x84) out[0] = 0x85;
  else if (head[0] === 0xde && head.readUInt16BE(1) === 4) out.writeUInt16BE(5, 1);
  else throw new Error('unexpected msgpack map header');
  let at = head.length + DATA_KEY.copy(out, head.length);
  out[at] = 0xc6; // bin 32
  out.writeUInt32BE(data.byteLength, at + 1);
  at += 5;
  out.set(data, at);
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
