import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { decodeMessage, encodeBlobs, encodeMessage, encodeOutput } from './codec';
import { ErrorCode, OctaskError } from './errors';
import { toColumns } from './manifestColumns';
import type { Message } from './protocol';
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from './protocol';

const plain = new Packr({ useRecords: false });

function rejects(frame: Uint8Array, code: string, text?: RegExp): void {
  assert.throws(
    () => decodeMessage(frame),
    (err: unknown) =>
      err instanceof OctaskError && err.code === code && (!text || text.test(err.message)),
  );
}

describe('codec', () => {
  const samples: Message[] = [
    {
      t: 'hello',
      protocol: PROTOCOL_VERSION,
      role: 'agent',
      id: 'a1',
      name: 'pi',
      version: '0.1.0',
      os: 'linux',
      arch: 'arm64',
      cpus: 4,
      memory: 4e9,
      maxJobs: 4,
      running: 1,
      tags: ['arm', 'pi'],
    },
    { t: 'run', task: 't1', command: 'make -j4', env: { CI: '1' }, timeoutMs: 0 },
    { t: 'cancel', task: 't1' },
    { t: 'started', task: 't1', pid: 4242 },
    { t: 'output', task: 't1', seq: 7, stream: 'stderr', data: Buffer.from('warning: x\n') },
    {
      t: 'exit',
      task: 't1',
      outcome: 'failed',
      exitCode: 2,
      signal: null,
      durationMs: 15,
      running: 0,
    },
    {
      t: 'exit',
      task: 't1',
      outcome: 'timed_out',
      exitCode: null,
      signal: 'SIGTERM',
      durationMs: 1000,
      running: 0,
    },
    { t: 'refused', task: 't1', code: ErrorCode.PolicyRefused, message: 'no' },
    { t: 'error', code: ErrorCode.BadField, message: 'bad' },
  ];

  for (const message of samples) {
    it(`round-trips ${message.t}`, () => {
      const back = decodeMessage(encodeMessage(message));
      assert.deepEqual(
        { ...back, ...('data' in back ? { data: Buffer.from(back.data) } : {}) },
        message,
      );
    });
  }

  it('encodes output frames by hand exactly as the generic encoder would be read', () => {
    const data = Buffer.from('a'.repeat(70_000));
    const frame = encodeOutput('task-1', 12, 'stdout', data);
    const back = decodeMessage(frame);
    assert.equal(back.t, 'output');
    assert.deepEqual(
      { ...back, data: Buffer.from((back as { data: Uint8Array }).data) },
      { t: 'output', task: 'task-1', seq: 12, stream: 'stdout', data },
    );
    assert.deepEqual(plain.unpack(frame), plain.unpack(encodeMessage(back)));
    assert.equal(frame.length, frame.buffer.byteLength, 'the frame owns its whole buffer');
    assert.equal(decodeMessage(encodeOutput('t', 0, 'stderr', Buffer.alloc(0))).t, 'output');
  });

  it('encodes blobs frames from their parts, copied once, as the generic encoder would', () => {
    const parts = [Buffer.from('first\n'), Buffer.alloc(0), Buffer.from('x'.repeat(300))];
    const hashes = parts.map((_, i) => String(i).repeat(64));
    const sizes = parts.map((p) => p.length);
    const frame = encodeBlobs('s1', hashes, sizes, parts, 306);
    const whole = { t: 'blobs', sync: 's1', hashes, sizes, data: Buffer.concat(parts) } as const;
    assert.deepEqual(plain.unpack(frame), plain.unpack(encodeMessage(whole)));
    const back = decodeMessage(frame);
    assert.equal(back.t, 'blobs');
    assert.deepEqual(Buffer.from((back as { data: Uint8Array }).data), whole.data);
    assert.throws(() => encodeBlobs('s1', hashes, sizes, parts, 305), /do not add up/);
  });

  it('encodes plain msgpack maps that any decoder reads', () => {
    const decoded = plain.unpack(encodeMessage({ t: 'cancel', task: 'x' })) as Record<
      string,
      unknown
    >;
    assert.deepEqual(decoded, { t: 'cancel', task: 'x' });
  });

  it('rejects bytes that are not msgpack', () => {
    rejects(Buffer.from([0xc1]), ErrorCode.FrameMalformed);
    rejects(Buffer.from('garbage!'), ErrorCode.FrameMalformed);
    rejects(Buffer.from([0x81, 0xa1, 0x74]), ErrorCode.FrameMalformed);
  });

  it('rejects a frame that is not a map', () => {
    rejects(plain.pack([1, 2, 3]), ErrorCode.FrameMalformed, /not a msgpack map/);
    rejects(plain.pack('hello'), ErrorCode.FrameMalformed);
  });

  it('rejects an unknown type, naming it', () => {
    rejects(plain.pack({ t: 'launch-missiles' }), ErrorCode.UnknownType, /launch-missiles/);
    rejects(plain.pack({ task: 'x' }), ErrorCode.UnknownType);
  });

  it('rejects a missing or mistyped field, naming it', () => {
    rejects(plain.pack({ t: 'cancel' }), ErrorCode.BadField, /cancel\.task/);
    rejects(
      plain.pack({ t: 'run', task: 't', command: 5, env: {}, timeoutMs: 0 }),
      ErrorCode.BadField,
      /run\.command/,
    );
    rejects(
      plain.pack({ t: 'run', task: 't', command: 'x', env: { A: 1 }, timeoutMs: 0 }),
      ErrorCode.BadField,
      /run\.env/,
    );
    rejects(
      plain.pack({ t: 'run', task: 't', command: 'x', env: {}, timeoutMs: -1 }),
      ErrorCode.BadField,
      /timeoutMs/,
    );
    rejects(plain.pack({ t: 'started', task: 't', pid: 1.5 }), ErrorCode.BadField, /pid/);
  });

  it('rejects values outside a closed set', () => {
    rejects(
      plain.pack({ t: 'output', task: 't', seq: 0, stream: 'stdin', data: Buffer.alloc(1) }),
      ErrorCode.BadField,
      /stream/,
    );
  });

  it('rejects empty and overlong ids', () => {
    rejects(plain.pack({ t: 'cancel', task: '' }), ErrorCode.BadField);
    rejects(plain.pack({ t: 'cancel', task: 'x'.repeat(300) }), ErrorCode.BadField);
  });

  it('sends a manifest as columns and gives the receiver its entries', () => {
    const hash = 'ab'.repeat(32);
    const message: Message = {
      t: 'sync',
      sync: 's',
      workspace: 'w',
      entries: [
        { path: 'a', size: 1, mode: 0o644, hash },
        { path: 'l', link: 'a' },
      ],
      preserve: [],
      last: true,
    };
    const frame = encodeMessage(message);
    const wire = plain.unpack(frame) as Record<string, unknown>;
    assert.equal(wire.entries, undefined);
    assert.equal((wire.columns as { paths: string }).paths, 'a\0l');
    assert.deepEqual(decodeMessage(frame), message);
    // Columns a sender already has go out as they are, as the same bytes.
    const sent = { ...message, columns: toColumns(message.entries) };
    const built = Buffer.from(encodeMessage(message));
    assert.ok(Buffer.from(encodeMessage(sent)).equals(built));
  });

  it('rejects manifest columns that disagree, naming the field', () => {
    const columns = {
      paths: 'a\0b',
      hashes: Buffer.alloc(64),
      sizes: [1, 2],
      modes: [0o644],
      links: [],
    };
    const sync = (c: unknown) =>
      plain.pack({ t: 'sync', sync: 's', workspace: 'w', columns: c, preserve: [], last: true });
    rejects(sync(columns), ErrorCode.BadField, /sync\.columns do not make a manifest/);
    rejects(
      sync({ ...columns, hashes: 'ab' }),
      ErrorCode.BadField,
      /sync\.columns must be columns/,
    );
    rejects(
      plain.pack({ t: 'sync', sync: 's', workspace: 'w', entries: [], preserve: [], last: true }),
      ErrorCode.BadField,
      /sync\.columns/,
    );
  });

  it('rejects a frame over the size cap before decoding it', () => {
    rejects(Buffer.alloc(MAX_FRAME_BYTES + 1), ErrorCode.FrameTooLarge);
  });
});
