import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { FrameConnection } from '../shared/frameConnection';
import { silentLogger } from '../shared/logger';
import type { ManifestEntry, Message } from '../shared/protocol';
import type { SyncLimits } from './syncReceiver';
import { DEFAULT_SYNC_LIMITS, EntryBudget, SyncReceiver } from './syncReceiver';
import { WorkspaceCopies } from './workspaceCopy';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function fileEntry(path: string, body: Buffer): ManifestEntry {
  return { path, size: body.length, mode: 0o644, hash: sha(body) };
}

describe('sync receiver limits', () => {
  let dir: string;
  let sent: Message[];
  let copies: WorkspaceCopies;
  const connection = { send: (m: Message) => sent.push(m) } as unknown as FrameConnection;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'octask-syncrx-'));
    sent = [];
    copies = new WorkspaceCopies(join(dir, 'ws'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function receiver(limits: Partial<SyncLimits> = {}, budget = new EntryBudget()): SyncReceiver {
    return new SyncReceiver(connection, copies, silentLogger, undefined, budget, {
      ...DEFAULT_SYNC_LIMITS,
      ...limits,
    });
  }

  const part = (sync: string, entries: ManifestEntry[], last = false): Message => ({
    t: 'sync',
    sync,
    workspace: 'w1',
    entries,
    preserve: [],
    last,
  });

  function failures(): Array<{ sync: string; code: string; message: string }> {
    return sent.flatMap((m) => (m.t === 'syncFailed' ? [m] : []));
  }

  it('refuses more open syncs per connection than its limit with E_LIMIT', () => {
    const rx = receiver({ openSyncs: 3 });
    for (let i = 0; i < 5; i++)
      rx.part(part(`s${i}`, [fileEntry(`f${i}`, Buffer.from('x'))]) as never);
    assert.equal(rx.open, 3);
    assert.deepEqual(
      failures().map((f) => [f.sync, f.code]),
      [
        ['s3', 'E_LIMIT'],
        ['s4', 'E_LIMIT'],
      ],
    );
    rx.close();
  });

  it('bounds manifest entries in flight across syncs and connections, and gives them back', () => {
    const budget = new EntryBudget(1000);
    const a = receiver({}, budget);
    const b = receiver({}, budget);
    const many = (n: number, tag: string): ManifestEntry[] =>
      Array.from({ length: n }, (_, i) => fileEntry(`${tag}/${i}`, Buffer.from(`${tag}${i}`)));
    a.part(part('a1', many(600, 'a')) as never);
    b.part(part('b1', many(300, 'b')) as never);
    assert.equal(budget.inFlight, 900);
    b.part(part('b2', many(200, 'c')) as never);
    assert.deepEqual(
      failures().map((f) => [f.sync, f.code]),
      [['b2', 'E_LIMIT']],
    );
    assert.match(failures()[0]?.message ?? '', /900 manifest entries .* at most 1000/);
    a.close();
    assert.equal(budget.inFlight, 300, "a closed connection's entries are freed");
    assert.equal(a.open, 0);
    b.close();
    assert.equal(budget.inFlight, 0);
  });

  it('expires a sync that stops making progress, freeing its entries', async () => {
    const budget = new EntryBudget();
    const rx = receiver({ idleMs: 50 }, budget);
    rx.part(part('slow', [fileEntry('a', Buffer.from('a'))]) as never);
    assert.equal(budget.inFlight, 1);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(rx.open, 0);
    assert.equal(budget.inFlight, 0);
    assert.deepEqual(
      failures().map((f) => [f.sync, f.code]),
      [['slow', 'E_TIMEOUT']],
    );
    // A late part of the expired sync is dropped quietly, not restarted.
    rx.part(part('slow', [fileEntry('b', Buffer.from('b'))], true) as never);
    assert.equal(rx.open, 0);
    assert.equal(failures().length, 1);
  });

  /** Files staged for the copy of w1, whichever sync staged them. */
  /** The files staged for w1, relative to their staging folder. */
  const staged = (): string[] => {
    const incoming = join(dir, 'ws', 'w1', 'incoming');
    return existsSync(incoming)
      ? readdirSync(incoming).flatMap((s) =>
          readdirSync(join(incoming, s), { recursive: true, withFileTypes: true })
            .filter((e) => e.isFile())
            .map((e) => relative(join(incoming, s), join(e.parentPath, e.name))),
        )
      : [];
  };

  it('removes what a failed sync staged', async () => {
    const rx = receiver();
    const one = Buffer.from('first blob');
    const two = Buffer.from('second blob');
    rx.part(part('s', [fileEntry('one', one), fileEntry('two', two)], true) as never);
    await new Promise((r) => setImmediate(r));
    const need = sent.find((m) => m.t === 'syncNeed');
    assert.ok(need, 'the receiver asks for the blobs');
    rx.blob({ t: 'blob', sync: 's', hash: sha(one), size: one.length, offset: 0, data: one });
    await new Promise((r) => setTimeout(r, 50));
    // The copy is new: its contents are staged at their paths, to be moved in as one tree.
    assert.deepEqual(staged(), ['tree/one'], 'the first blob is staged beside the copy');
    // A blob whose bytes do not match its hash fails the sync.
    const wrong = Buffer.from('SECOND BLOB');
    rx.blob({ t: 'blob', sync: 's', hash: sha(two), size: two.length, offset: 0, data: wrong });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(failures()[0]?.code, 'E_BAD_CONTENT');
    assert.deepEqual(staged(), [], 'what the failed sync staged is gone');
    assert.equal(existsSync(join(dir, 'ws', 'w1', 'tree', 'one')), false, 'the copy is as it was');
  });
});
