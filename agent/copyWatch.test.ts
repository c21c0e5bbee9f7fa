import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopyWatch, MAX_WATCHED_FOLDERS } from './copyWatch';

/** Two immediates: a poll phase between them reads the queued inotify events. */
const delivered = async (): Promise<void> => {
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
};

describe('copy watch', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'octask-copywatch-'));
    mkdirSync(join(dir, 'src', 'deep'), { recursive: true });
    for (const f of ['top.txt', 'src/a.c', 'src/deep/b.c']) writeFileSync(join(dir, f), f);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const start = (): CopyWatch => {
    const w = CopyWatch.start(dir, ['top.txt', 'src/a.c', 'src/deep/b.c']);
    assert.ok(w, 'a watch on Linux');
    return w;
  };

  it('stays clean when files that are not the layout’s come and go beside them', async () => {
    const w = start();
    writeFileSync(join(dir, 'src', 'a.o'), 'object');
    mkdirSync(join(dir, 'node_modules'));
    writeFileSync(join(dir, 'src', 'deep', 'b.o'), 'object');
    await delivered();
    assert.equal(w.clean, true);
    w.close();
  });

  for (const [what, act] of [
    ['an edit of a deep file', (d: string) => writeFileSync(join(d, 'src/deep/b.c'), 'edited')],
    ['a removed file', (d: string) => rmSync(join(d, 'top.txt'))],
    ['a folder on the way replaced', (d: string) => rmSync(join(d, 'src'), { recursive: true })],
  ] as const) {
    it(`is touched by ${what}, and clean again after reset`, async () => {
      const w = start();
      act(dir);
      await delivered();
      assert.equal(w.clean, false);
      w.reset();
      assert.equal(w.clean, true);
      w.close();
    });
  }

  it('is not made off Linux, or for more folders than its bound', () => {
    assert.equal(CopyWatch.start(dir, ['top.txt'], 'darwin'), undefined);
    const many = Array.from({ length: MAX_WATCHED_FOLDERS + 1 }, (_, i) => `f${i}/x`);
    assert.equal(CopyWatch.start(dir, many), undefined);
  });
});
