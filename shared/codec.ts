import { Packr } from 'msgpackr';
import { ErrorCode, OctaskError } from './errors';
import type { Message } from './protocol';
import { MAX_FRAME_BYTES } from './protocol';
import { validateMessage } from './validate';

// Plain maps on the wire (no msgpackr record extension), so any msgpack
// implementation can speak the protocol.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** Encodes one message into one frame. */
export function encodeMessage(message: Message): Buffer {
  return packr.pack(message);
}

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
