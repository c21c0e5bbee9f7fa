import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OctaskError } from '../shared/errors';
import { ContentStore } from './contentStore';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('content store', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'octask-store-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function put(store: ContentStore, body: Buffer, chunk = 3): Promise<string> {
    const hash = sha(body);
    const w = store.writer(hash, body.length);
    for (let i = 0; i < body.length; i += chunk) w.write(body.subarray(i, i + chunk));
    await w.finish();
    return hash;
  }

  it('keeps a blob written in chunks under its hash, read-only', async () => {
    const store = new ContentStore(dir, 1e9);
    const body = Buffer.from('hello, content store');
    const hash = await put(store, body);
    assert.ok(store.has(hash));
    assert.deepEqual(readFileSync(store.pathOf(hash)), body);
    assert.deepEqual(store.missing([hash, sha(Buffer.from('other')), sha(Buffer.from('other'))]), [
      sha(Buffer.from('other')),
    ]);
    assert.equal(store.size, body.length);
  });

  it('rejects bytes that do not match the announced hash and keeps nothing', async () => {
    const store = new ContentStore(dir, 1e9);
    const claimed = sha(Buffer.from('the real thing'));
    const w = store.writer(claimed, 14);
    w.write(Buffer.from('a forged thing'));
    await assert.rejects(w.finish(), /did not match/);
    assert.equal(store.has(claimed), false);
    assert.equal(existsSync(store.pathOf(claimed)), false);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  });

  it('refuses a name that is not a content hash', () => {
    const store = new ContentStore(dir, 1e9);
    assert.throws(() => store.pathOf('../../etc/passwd'), /not a content hash/);
  });

  it('evicts the least recently used blobs down to its cap, sparing the kept ones', async () => {
    const store = new ContentStore(dir, 25, 0);
    const a = await put(store, Buffer.alloc(10, 1));
    const b = await put(store, Buffer.alloc(10, 2));
    const c = await put(store, Buffer.alloc(10, 3));
    store.touch([a]);
    await new Promise((r) => setTimeout(r, 5));
    store.touch([a]);
    const removed = await store.evict(new Set([c]));
    assert.equal(removed, 1);
    assert.ok(store.has(a) && store.has(c) && !store.has(b));
    assert.equal(store.size, 20);
  });

  it('stores a blob that arrived whole, checking its hash', async () => {
    const store = new ContentStore(dir, 1e9);
    const body = Buffer.from('in one frame');
    await store.put(sha(body), body);
    assert.deepEqual(readFileSync(store.pathOf(sha(body))), body);
    await assert.rejects(store.put(sha(Buffer.from('x')), Buffer.from('y')), /did not match/);
    assert.equal(store.has(sha(Buffer.from('x'))), false);
  });

  it('finds its blobs again after a restart', async () => {
    const first = new ContentStore(dir, 1e9);
    const hash = await put(first, Buffer.from('persist me'));
    const second = new ContentStore(dir, 1e9);
    assert.ok(second.has(hash));
    assert.equal(second.size, 10);
  });

  it('evicts least recently used blobs to make room for a sync, sparing what it keeps', async () => {
    const store = new ContentStore(dir, 30, 0);
    const a = await put(store, Buffer.alloc(10, 'a'));
    await new Promise((r) => setTimeout(r, 5));
    const b = await put(store, Buffer.alloc(10, 'b'));
    await new Promise((r) => setTimeout(r, 5));
    const c = await put(store, Buffer.alloc(10, 'c'));
    await store.makeRoom(15, 15, new Set([a]));
    assert.ok(store.has(a) && !store.has(b) && !store.has(c), 'b, then c, went; a was kept');
    assert.equal(store.size, 10);
    assert.equal(existsSync(store.pathOf(b)), false);
  });

  it('refuses with E_NO_SPACE, saying needed and free, what no eviction can fit on disk', async () => {
    const store = new ContentStore(dir, 100);
    const a = await put(store, Buffer.alloc(50, 'a'));
    const b = await put(store, Buffer.alloc(50, 'b'));
    const tooMuch = (store.freeBytes() ?? 0) + 1e12;
    await assert.rejects(
      store.makeRoom(10, tooMuch, new Set([b])),
      (err: unknown) =>
        err instanceof OctaskError &&
        err.code === 'E_NO_SPACE' &&
        new RegExp(`needs [\\d.]+ MiB \\(${tooMuch} bytes\\), [\\d.]+ MiB free on disk`).test(
          err.message,
        ),
    );
    assert.equal(store.has(a), false, 'it evicted what it could first');
    assert.ok(store.has(b), 'but not what the sync keeps');
  });

  it('lets a sync larger than the cap through when the disk has room', async () => {
    const store = new ContentStore(dir, 10);
    await store.makeRoom(1000, 2000, new Set());
    assert.equal(store.size, 0);
    assert.ok((store.freeBytes() ?? 0) > 0, 'statfs works on this Node');
  });

  it('clears half-written blobs a dead process left behind', () => {
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    writeFileSync(join(dir, 'tmp', '999-1'), Buffer.alloc(1000));
    new ContentStore(dir, 1e9);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  });
});
