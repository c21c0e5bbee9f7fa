import assert from 'node:assert/strict';
import { ProgressLine, whileSlow } from './progressLine';

function fakeStream(isTTY: boolean) {
  const written: string[] = [];
  return { isTTY, columns: 40, written, write: (s: string) => written.push(s) > 0 };
}

describe('progress line', () => {
  it('rewrites one line in place on a terminal, and erases it', () => {
    const s = fakeStream(true);
    const line = new ProgressLine(s);
    line.show('octask: sending pi 1/10 files');
    line.show('octask: sending pi 2/10 files');
    line.clear();
    line.clear();
    assert.deepEqual(s.written, [
      '\r\x1b[Koctask: sending pi 1/10 files',
      '\r\x1b[Koctask: sending pi 2/10 files',
      '\r\x1b[K',
    ]);
  });

  it('writes nothing at all when the stream is piped', async () => {
    const s = fakeStream(false);
    const line = new ProgressLine(s);
    line.show('x');
    line.clear();
    await whileSlow(
      s as unknown as NodeJS.WriteStream,
      'slow',
      new Promise((r) => setTimeout(r, 1100)),
    );
    assert.deepEqual(s.written, []);
  });

  it('shows work that takes over a second, and only that', async () => {
    const s = fakeStream(true);
    await whileSlow(s as unknown as NodeJS.WriteStream, 'quick', Promise.resolve(1));
    assert.deepEqual(s.written, []);
    await whileSlow(
      s as unknown as NodeJS.WriteStream,
      'slow',
      new Promise((r) => setTimeout(r, 1100)),
    );
    assert.deepEqual(s.written, ['\r\x1b[Kslow', '\r\x1b[K']);
  });
});
