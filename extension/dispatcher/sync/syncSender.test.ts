import assert from 'node:assert/strict';
import { encodeMessage } from '../../../shared/codec';
import type { ManifestEntry } from '../../../shared/manifest';
import { MAX_FRAME_BYTES } from '../../../shared/protocol';
import { prepareWorkspace, sourcesOf } from './preparedWorkspace';
import { framesOf } from './syncSender';

const hash = (i: number): string => i.toString(16).padStart(64, '0');

function files(n: number, path: (i: number) => string): ManifestEntry[] {
  return Array.from({ length: n }, (_, i) => ({
    path: path(i),
    size: i,
    mode: 0o644,
    hash: hash(i),
  }));
}

describe('sync sender', () => {
  it('sends a source tree of 10,000 files as one sync frame', () => {
    assert.deepEqual(framesOf(files(10_000, (i) => `pkg-${i % 10}/mod-${i % 97}/file-${i}.ts`)), [
      [0, 10_000],
    ]);
    assert.deepEqual(framesOf([]), [[0, 0]]);
  });

  it('cuts long paths into frames that each stay under the frame cap, in order, none lost', () => {
    // 4,000 paths of 2,000 ASCII characters, and some of 700 three-byte ones: far over one frame.
    const entries = [
      ...files(4000, (i) => `${String(i).padStart(6, '0')}/${'a'.repeat(2000)}`),
      ...files(500, (i) => `z/${String(i).padStart(6, '0')}${'€'.repeat(700)}`),
    ];
    const frames = framesOf(entries);
    assert.ok(frames.length > 2, `${frames.length} frames`);
    let next = 0;
    for (const [from, to] of frames) {
      assert.equal(from, next);
      assert.ok(to > from);
      next = to;
      const frame = encodeMessage({
        t: 'sync',
        sync: 's',
        workspace: 'w',
        entries: entries.slice(from, to),
        preserve: [],
        last: false,
      });
      assert.ok(frame.byteLength < MAX_FRAME_BYTES, `${frame.byteLength} bytes`);
    }
    assert.equal(next, entries.length);
  });

  it('finds where each asked-for content is read from, and its size, by one pass', () => {
    const entries: ManifestEntry[] = [
      { path: 'a', size: 1, mode: 0o644, hash: hash(1) },
      { path: 'b/copy-of-a', size: 1, mode: 0o644, hash: hash(1) },
      { path: 'l', link: 'a' },
      { path: 'z', size: 9, mode: 0o755, hash: hash(2) },
    ];
    const ws = prepareWorkspace('w', '/root', entries, []);
    assert.deepEqual(
      [...sourcesOf(ws.entries, ws.root, [hash(2), hash(1), hash(3)])],
      [
        [hash(1), { path: '/root/a', size: 1 }],
        [hash(2), { path: '/root/z', size: 9 }],
      ],
    );
    assert.equal(ws.bytes, 11);
  });
});
