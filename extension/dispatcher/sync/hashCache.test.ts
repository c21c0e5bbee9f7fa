import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  lstatSync,
  statSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { TempDir } from '../../../test/helpers/gitRepo';
import { tempDir } from '../../../test/helpers/gitRepo';
import { HashCache, hashFile, hashFileSync, KEEP_FILE_MAX } from './hashCache';

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes a file whose times lie an hour back, so the cache trusts it. */
function writeSettled(path: string, content: string | Buffer): void {
  writeFileSync(path, content);
  const past = new Date(Date.now() - 3600_000);
  utimesSync(path, past, past);
}

// utimes bumps ctime to now; a zero racy window lets tests cache at once.
const TRUST_NOW = { racyWindowMs: 0 };

describe('sync hashCache', () => {
  let tmp: TempDir;
  beforeEach(() => (tmp = tempDir('hashcache')));
  afterEach(() => tmp.dispose());

  it('hashes a file in chunks to its sha256, larger than one chunk too', async () => {
    const big = Buffer.alloc(3 * 256 * 1024 + 17, 7);
    big[big.length - 1] = 1;
    writeFileSync(join(tmp.path, 'big'), big);
    writeFileSync(join(tmp.path, 'empty'), '');
    assert.equal((await hashFile(join(tmp.path, 'big'))).hash, sha256(big));
    assert.equal((await hashFile(join(tmp.path, 'big'))).stamp.size, big.length);
    assert.equal((await hashFile(join(tmp.path, 'empty'))).hash, sha256(''));
  });

  it('hashes small files synchronously, and leaves bigger ones to hashFile', () => {
    const big = Buffer.alloc(3 * 256 * 1024 + 17, 7);
    writeFileSync(join(tmp.path, 'big'), big);
    writeFileSync(join(tmp.path, 'empty'), '');
    assert.equal(hashFileSync(join(tmp.path, 'big'))?.hash, sha256(big));
    assert.equal(hashFileSync(join(tmp.path, 'big'), big.length - 1), null);
    assert.equal(hashFileSync(join(tmp.path, 'empty'))?.hash, sha256(''));
    symlinkSync('big', join(tmp.path, 'link'));
    assert.throws(() => hashFileSync(join(tmp.path, 'link')), { code: 'ELOOP' });
    execFileSync('mkfifo', [join(tmp.path, 'fifo')]);
    assert.throws(() => hashFileSync(join(tmp.path, 'fifo')), /no longer a regular file/);
  });

  it('keeps the bytes it hashed when asked, for files up to the limit and within the budget', async () => {
    const a = Buffer.from('alpha\n'.repeat(100));
    const b = Buffer.from('beta\n'.repeat(100));
    const big = Buffer.alloc(KEEP_FILE_MAX + 1, 3);
    for (const [name, data] of [
      ['a', a],
      ['b', b],
      ['kbig', big],
    ] as const)
      writeFileSync(join(tmp.path, name), data);
    assert.deepEqual(hashFileSync(join(tmp.path, 'a'), undefined, a.length)?.data, a);
    assert.equal(hashFileSync(join(tmp.path, 'a'), undefined, a.length - 1)?.data, undefined);
    assert.equal(hashFileSync(join(tmp.path, 'kbig'), undefined, 10 * big.length)?.data, undefined);
    // Room for a but not then b: only a is kept; the hashes are right either way.
    const cache = await HashCache.load(null, { racyWindowMs: 0, keepBytes: a.length + 10 });
    const stat = (name: string) => statSync(join(tmp.path, name));
    assert.equal(cache.hashSync(join(tmp.path, 'a'), stat('a'))?.hash, sha256(a));
    assert.equal(cache.hashSync(join(tmp.path, 'b'), stat('b'))?.hash, sha256(b));
    assert.deepEqual([...cache.kept.keys()], [sha256(a)]);
    assert.deepEqual(cache.kept.get(sha256(a)), a);
    // Without keepBytes nothing is kept.
    const plain = await HashCache.load(null, { racyWindowMs: 0 });
    plain.hashSync(join(tmp.path, 'a'), stat('a'));
    assert.equal(plain.kept.size, 0);
  });

  it('hashSync answers from the cache or reads a small file, null for a big one', async () => {
    const [small, big] = [join(tmp.path, 'small'), join(tmp.path, 'big')];
    writeSettled(small, 'tiny');
    writeSettled(big, Buffer.alloc(1024 * 1024 + 1, 1));
    const cache = await HashCache.load(null, TRUST_NOW);
    assert.equal(cache.hashSync(small, lstatSync(small))?.hash, sha256('tiny'));
    assert.equal(cache.hashSync(small, lstatSync(small))?.hash, sha256('tiny'));
    assert.equal(cache.hashSync(big, lstatSync(big)), null);
    assert.deepEqual([cache.hits, cache.misses], [1, 1]);
    assert.equal((await cache.hash(big, lstatSync(big))).stamp.size, 1024 * 1024 + 1);
    assert.equal(cache.hashSync(big, lstatSync(big))?.stamp.size, 1024 * 1024 + 1);
    assert.deepEqual([cache.hits, cache.misses], [2, 2]);
  });

  it('hashUnseen opens a path it has no row for, and leaves links, FIFOs, the gone and known paths to an lstat', async () => {
    const at = (name: string): string => join(tmp.path, name);
    writeSettled(at('new'), 'fresh');
    writeSettled(at('known'), 'old');
    symlinkSync('new', at('link'));
    execFileSync('mkfifo', [at('fifo')]);
    const cache = await HashCache.load(null, { ...TRUST_NOW, keepBytes: 100 });
    cache.hashSync(at('known'), lstatSync(at('known')));
    const unseen = cache.hashUnseen(at('new'));
    assert.equal(unseen.result?.hash, sha256('fresh'));
    assert.equal(unseen.stats?.size, 5);
    assert.equal(unseen.stats?.ino, lstatSync(at('new')).ino);
    assert.deepEqual(cache.kept.get(sha256('fresh')), Buffer.from('fresh'));
    for (const name of ['known', 'link', 'fifo', 'gone'])
      assert.deepEqual(cache.hashUnseen(at(name)), { result: null }, name);
    // What it hashed is remembered: the next run's lookup needs no read.
    assert.equal(cache.hashSync(at('new'), lstatSync(at('new')))?.hash, sha256('fresh'));
    assert.deepEqual([cache.hits, cache.misses], [1, 2]);
  });

  it('refuses to follow a symlink or open a FIFO', async () => {
    writeFileSync(join(tmp.path, 'real'), 'x');
    symlinkSync('real', join(tmp.path, 'link'));
    await assert.rejects(hashFile(join(tmp.path, 'link')), { code: 'ELOOP' });
    execFileSync('mkfifo', [join(tmp.path, 'fifo')]);
    await assert.rejects(hashFile(join(tmp.path, 'fifo')), /no longer a regular file/);
  });

  it('answers an unchanged file from the cache, and re-reads a changed one', async () => {
    const file = join(tmp.path, 'a.txt');
    writeSettled(file, 'one');
    const cache = await HashCache.load(null, TRUST_NOW);
    assert.equal((await cache.hash(file, lstatSync(file))).hash, sha256('one'));
    assert.equal((await cache.hash(file, lstatSync(file))).hash, sha256('one'));
    assert.deepEqual([cache.hits, cache.misses], [1, 1]);
    writeSettled(file, 'two');
    assert.equal((await cache.hash(file, lstatSync(file))).hash, sha256('two'));
    assert.deepEqual([cache.hits, cache.misses], [1, 2]);
  });

  it('treats any stamp difference as a change: size, mtime, ctime, inode', async () => {
    const file = join(tmp.path, 'a.txt');
    writeSettled(file, 'one');
    const cache = await HashCache.load(null, TRUST_NOW);
    const stamp = lstatSync(file);
    await cache.hash(file, stamp);
    const base = {
      size: stamp.size,
      mtimeMs: stamp.mtimeMs,
      ctimeMs: stamp.ctimeMs,
      ino: stamp.ino,
    };
    for (const changed of [
      { ...base, size: base.size + 1 },
      { ...base, mtimeMs: base.mtimeMs + 1 },
      { ...base, ctimeMs: base.ctimeMs + 1 },
      { ...base, ino: base.ino + 1 },
    ]) {
      const misses = cache.misses;
      await cache.hash(file, changed);
      assert.equal(cache.misses, misses + 1, JSON.stringify(changed));
    }
  });

  it('does not remember a file modified within the racy window', async () => {
    const file = join(tmp.path, 'fresh.txt');
    writeFileSync(file, 'just written');
    const cache = await HashCache.load(null, { racyWindowMs: 60_000 });
    await cache.hash(file, lstatSync(file));
    await cache.hash(file, lstatSync(file));
    assert.deepEqual([cache.hits, cache.misses, cache.size], [0, 2, 0]);
  });

  it('persists to one columnar JSON file atomically and loads it back', async () => {
    const cacheFile = join(tmp.path, 'deep/cache/hashes.json');
    const files = ['a', 'b', 'c'].map((n) => join(tmp.path, n));
    for (const f of files) writeSettled(f, `content ${f}`);
    const first = await HashCache.load(cacheFile, TRUST_NOW);
    for (const f of files) await first.hash(f, lstatSync(f));
    await first.save();
    assert.deepEqual(readdirSync(join(tmp.path, 'deep/cache')), ['hashes.json']);
    const stored = JSON.parse(readFileSync(cacheFile, 'utf8')) as { version: number; base: string };
    // One common folder, stored once.
    assert.deepEqual([stored.version, stored.base], [2, `${tmp.path}/`]);
    const second = await HashCache.load(cacheFile, TRUST_NOW);
    for (const f of files) {
      assert.equal((await second.hash(f, lstatSync(f))).hash, sha256(`content ${f}`));
    }
    assert.deepEqual([second.hits, second.misses], [3, 0]);
  });

  it('starts empty from a missing, corrupt, old or foreign cache file', async () => {
    const cacheFile = join(tmp.path, 'cache.json');
    assert.equal((await HashCache.load(cacheFile)).size, 0);
    const stamps = (...xs: number[]): string =>
      Buffer.from(new Float64Array(xs).buffer).toString('base64');
    const good = {
      version: 2,
      base: '/',
      paths: 'ok',
      stamps: stamps(1, 2, 3, 4),
      hashes: 'ab'.repeat(32),
    };
    writeFileSync(cacheFile, JSON.stringify(good));
    assert.equal((await HashCache.load(cacheFile)).size, 1);
    for (const junk of [
      '{"version":2,"paths":',
      'null',
      '[]',
      '\u0000',
      // The old format (1), and a future one.
      JSON.stringify({ version: 1, rows: { '/ok': [1, 2, 3, 4, 'ab'.repeat(32)] } }),
      JSON.stringify({ ...good, version: 99 }),
      // Columns that do not line up, a hash that is not lowercase hex.
      JSON.stringify({ ...good, stamps: stamps(1, 2, 3) }),
      JSON.stringify({ ...good, paths: 'ok\0two' }),
      JSON.stringify({ ...good, hashes: 'ab'.repeat(31) }),
      JSON.stringify({ ...good, hashes: 'zz'.repeat(32) }),
      JSON.stringify({ ...good, hashes: 'AB'.repeat(32) }),
      JSON.stringify({ ...good, base: 7 }),
    ]) {
      writeFileSync(cacheFile, junk);
      assert.equal((await HashCache.load(cacheFile)).size, 0, junk);
    }
  });

  it('a corrupt cache is replaced by a good one on save', async () => {
    const cacheFile = join(tmp.path, 'cache.json');
    writeFileSync(cacheFile, 'garbage');
    const file = join(tmp.path, 'f');
    writeSettled(file, 'x');
    const cache = await HashCache.load(cacheFile, TRUST_NOW);
    await cache.hash(file, lstatSync(file));
    await cache.save();
    assert.equal((await HashCache.load(cacheFile)).size, 1);
  });

  it('pruneUnused forgets paths not asked about since loading', async () => {
    const cacheFile = join(tmp.path, 'cache.json');
    const [a, b] = [join(tmp.path, 'a'), join(tmp.path, 'b')];
    writeSettled(a, 'a');
    writeSettled(b, 'b');
    const first = await HashCache.load(cacheFile, TRUST_NOW);
    await first.hash(a, lstatSync(a));
    await first.hash(b, lstatSync(b));
    await first.save();
    const second = await HashCache.load(cacheFile, TRUST_NOW);
    await second.hash(a, lstatSync(a));
    second.pruneUnused();
    await second.save();
    assert.equal((await HashCache.load(cacheFile)).size, 1);
  });

  it('reads a large file without holding it whole (bounded chunks)', async () => {
    // 64 MiB of file, hashed while heap growth stays well under its size.
    const file = join(tmp.path, 'large');
    const handle = await open(file, 'w');
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    for (let i = 0; i < 64; i++) await handle.write(chunk);
    await handle.close();
    const before = process.memoryUsage().arrayBuffers;
    let peak = before;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 1);
    const { hash } = await hashFile(file);
    clearInterval(timer);
    const expected = createHash('sha256');
    for (let i = 0; i < 64; i++) expected.update(chunk);
    assert.equal(hash, expected.digest('hex'));
    assert.ok(peak - before < 16 * 1024 * 1024, `grew by ${peak - before} bytes`);
  });
});
