import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutputSpool } from './outputSpool';

describe('OutputSpool', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'octask-spool-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('numbers chunks and gives back every one from any seq, in order', () => {
    const spool = new OutputSpool(join(dir, 't'));
    for (let i = 0; i < 10; i++)
      spool.append(i % 2 ? 'stderr' : 'stdout', Buffer.from(`line ${i}\n`));
    assert.equal(spool.nextSeq, 10);
    const from4 = spool.read(4);
    assert.deepEqual(
      from4.map((c) => c.seq),
      [4, 5, 6, 7, 8, 9],
    );
    assert.equal(from4[0]?.data.toString(), 'line 4\n');
    assert.equal(from4[1]?.stream, 'stderr');
    assert.deepEqual(spool.read(10), []);
    spool.remove();
    assert.deepEqual(readdirSync(dir), []);
  });

  it('keeps the newest output within its bound and marks where it was cut', () => {
    const spool = new OutputSpool(join(dir, 't'), 1000);
    for (let i = 0; i < 100; i++) spool.append('stdout', Buffer.alloc(100, 'x'));
    const all = spool.read(0);
    assert.equal(all[0]?.seq, 0);
    assert.match(all[0]?.data.toString() ?? '', /bytes of output were not kept/);
    const kept = all.slice(1);
    assert.ok(kept.length <= 10 && kept.length >= 5, `kept ${kept.length}`);
    assert.equal(kept[kept.length - 1]?.seq, 99);
    for (let i = 1; i < kept.length; i++) assert.equal(kept[i]?.seq, (kept[i - 1]?.seq ?? 0) + 1);
    assert.ok(readdirSync(dir).length <= 2);
    spool.remove();
  });
});
