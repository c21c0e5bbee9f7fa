import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, startAgent, tempDir } from '../helpers/agentProcess';
import type { RawPeer } from '../helpers/rawPeer';
import { dispatcherHello, rawDial } from '../helpers/rawPeer';
import type { ClusterKey } from '../../shared/clusterKey';
import { ErrorCode } from '../../shared/errors';
import { manifestDigest } from '../../shared/manifestDigest';
import type { ManifestEntry, Message } from '../../shared/protocol';

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

function file(path: string, body: string, mode = 0o644): ManifestEntry {
  return { path, size: Buffer.byteLength(body), mode, hash: sha(body) };
}

describe('an agent receiving workspace syncs straight from the wire @integration', function () {
  this.timeout(30_000);
  const dir = tempDir();
  let key: ClusterKey;
  let agent: StartedAgent;
  let peer: RawPeer;
  let n = 0;

  before(async () => {
    let keyFile: string;
    ({ path: keyFile, key } = newKeyFile(dir.path));
    agent = await startAgent({ keyFile, name: 'syncer' });
  });
  beforeEach(async () => {
    peer = await rawDial(agent.port, key);
    peer.send(dispatcherHello());
    assert.equal((await peer.next()).t, 'hello');
  });
  afterEach(() => peer.ws.close());
  after(async () => {
    await agent.stop();
    dir.cleanup();
  });

  async function until<T extends Message['t']>(t: T): Promise<Extract<Message, { t: T }>> {
    for (;;) {
      const m = await peer.next();
      if (m.t === t) return m as Extract<Message, { t: T }>;
      if (m.t === 'syncFailed' || m.t === 'refused' || m.t === 'error')
        assert.fail(`got ${JSON.stringify(m)}`);
    }
  }

  async function sync(
    workspace: string,
    entries: ManifestEntry[],
    bodies: Record<string, string>,
  ): Promise<Message> {
    const id = `s${++n}`;
    peer.send({ t: 'sync', sync: id, workspace, entries, preserve: [], last: true });
    const first = await peer.next();
    if (first.t !== 'syncNeed') return first;
    for (const hash of first.hashes) {
      const body = Buffer.from(bodies[hash] ?? '');
      peer.send({ t: 'blob', sync: id, hash, size: body.length, offset: 0, data: body });
    }
    return peer.next();
  }

  async function run(workspace: string, command: string): Promise<string> {
    const task = `t${++n}`;
    peer.send({ t: 'run', task, command, env: {}, timeoutMs: 0, workspace, cwd: '' });
    let out = '';
    for (;;) {
      const m = await peer.next();
      if (m.t === 'output') out += Buffer.from(m.data).toString();
      if (m.t === 'refused') return `refused ${m.code}`;
      if (m.t === 'exit') return out;
    }
  }

  it('lays out files with their modes and runs in the copy; asks only for what it lacks', async () => {
    const a = 'hello\n';
    const tool = '#!/bin/sh\necho tool ran\n';
    const entries = [
      file('a.txt', a),
      file('bin/tool', tool, 0o755),
      { path: 'link', link: 'a.txt' },
    ];
    const done = await sync('ws1', entries, { [sha(a)]: a, [sha(tool)]: tool });
    assert.equal(done.t, 'syncDone');
    assert.equal(await run('ws1', 'cat link; ./bin/tool'), 'hello\ntool ran\n');
    // Same content again: nothing to send.
    const id = `s${++n}`;
    peer.send({ t: 'sync', sync: id, workspace: 'ws1', entries, preserve: [], last: true });
    const need = await until('syncNeed');
    assert.deepEqual(need.hashes, []);
    const again = await until('syncDone');
    assert.equal(again.written, 0);
  });

  it('removes files gone from the manifest and keeps task-made ones; clean removes those too, but not preserved ones', async () => {
    const a = 'one\n';
    await sync('ws2', [file('a.txt', a), file('old.txt', 'old\n')], {
      [sha(a)]: a,
      [sha('old\n')]: 'old\n',
    });
    assert.equal(
      await run('ws2', 'mkdir -p node_modules/x && touch node_modules/x/i.js build.log'),
      '',
    );
    const layOut = async (clean: boolean) => {
      const id = `s${++n}`;
      peer.send({
        t: 'sync',
        sync: id,
        workspace: 'ws2',
        entries: [file('a.txt', a)],
        preserve: ['node_modules'],
        last: true,
        ...(clean ? { clean } : {}),
      });
      await until('syncNeed');
      return until('syncDone');
    };
    const checkout = await layOut(false);
    assert.equal(checkout.removed, 1); // old.txt came from the workspace; build.log did not
    assert.equal(checkout.kept, 2);
    assert.equal(await run('ws2', 'ls -A | sort | tr "\\n" " "'), 'a.txt build.log node_modules ');
    const fresh = await layOut(true);
    assert.equal(fresh.removed, 1); // build.log
    assert.equal(fresh.kept, 1); // node_modules/x/i.js, preserved
    assert.equal(await run('ws2', 'ls -A | sort | tr "\\n" " "'), 'a.txt node_modules ');
  });

  it('answers a check by digest: stale until laid out, then done; stale again once a task changed a file', async () => {
    const body = 'checked\n';
    const entries = [file('c.txt', body), { path: 'c-link', link: 'c.txt' }];
    const check = async (): Promise<Message> => {
      const id = `s${++n}`;
      peer.send({ t: 'syncCheck', sync: id, workspace: 'ws4', digest: manifestDigest(entries) });
      const answer = await peer.next();
      assert.equal(answer.t === 'syncStale' || answer.t === 'syncDone' ? answer.sync : '', id);
      return answer;
    };
    assert.equal((await check()).t, 'syncStale', 'no copy yet');
    assert.equal((await sync('ws4', entries, { [sha(body)]: body })).t, 'syncDone');
    const done = await check();
    assert.equal(done.t, 'syncDone');
    assert.equal(done.t === 'syncDone' && done.written, 0);
    assert.equal((await check()).t, 'syncDone', 'asked again with nothing in between');
    assert.equal(await run('ws4', 'true'), '', 'a task that changes nothing');
    assert.equal((await check()).t, 'syncDone', 'its files were looked at, and are as laid out');
    assert.equal(await run('ws4', 'echo edited >> c.txt'), '');
    assert.equal((await check()).t, 'syncStale', 'a task edited a workspace file');
    // The full sync puts it back, sending the content again (the copy held only the edit).
    const back = await sync('ws4', entries, { [sha(body)]: body });
    assert.equal(back.t, 'syncDone');
    assert.equal(await run('ws4', 'cat c.txt'), body);
    assert.equal((await check()).t, 'syncDone');
  });

  /** Asks about `digest`, and returns the base the agent offers with its `syncStale`. */
  async function offeredBase(
    workspace: string,
    digest: string,
  ): Promise<{ id: string; base?: string }> {
    const id = `s${++n}`;
    peer.send({ t: 'syncCheck', sync: id, workspace, digest });
    const stale = await until('syncStale');
    assert.equal(stale.sync, id);
    return { id, ...(stale.base !== undefined ? { base: stale.base } : {}) };
  }

  it('takes only what differs from the layout it offers as a base, and refuses a delta that does not fit it', async () => {
    const [a, b, c] = ['alpha\n', 'beta\n', 'gamma\n'];
    const v1 = [file('a', a), file('d/b', b), file('gone', c)];
    assert.equal((await sync('ws9', v1, { [sha(a)]: a, [sha(b)]: b, [sha(c)]: c })).t, 'syncDone');
    const v2 = [file('a', a), file('d/b', c), file('new', a)];
    const { id, base } = await offeredBase('ws9', manifestDigest(v2));
    assert.equal(base, manifestDigest(v1), 'the copy offers its last layout');
    peer.send({
      t: 'sync',
      sync: id,
      workspace: 'ws9',
      entries: [file('d/b', c), file('new', a)],
      removed: ['gone'],
      base: manifestDigest(v1),
      digest: manifestDigest(v2),
      preserve: [],
      last: true,
    });
    const need = await until('syncNeed');
    assert.deepEqual(need.hashes, [], 'both contents are in the copy already');
    assert.equal((await until('syncDone')).t, 'syncDone');
    assert.equal(await run('ws9', 'cat a d/b new; ls'), `${a}${c}${a}a\nd\nnew\n`);
    const again = await offeredBase('ws9', manifestDigest(v1));
    assert.equal(again.base, manifestDigest(v2), 'the delta laid out the whole new manifest');

    // Changes that do not make the manifest they name, a path the base lacks, a base
    // not offered, a delta without a base: each refused, and the copy left as it was.
    const refusals: Array<[Partial<Extract<Message, { t: 'sync' }>>, RegExp]> = [
      [
        { entries: [file('a', b)], removed: [], digest: manifestDigest(v1) },
        /do not make the manifest/,
      ],
      [
        { entries: [], removed: ['nowhere'], digest: manifestDigest(v2) },
        /nowhere is removed but not in the base/,
      ],
      [
        { entries: [], removed: [], base: sha('other'), digest: manifestDigest(v2) },
        /not the layout this agent offered/,
      ],
      [
        { workspace: 'ws10', entries: [], removed: [], digest: manifestDigest(v2) },
        /not the layout this agent offered/,
      ],
      [
        { entries: [], removed: [], base: undefined, digest: manifestDigest(v2) },
        /come with sync.base/,
      ],
    ];
    for (const [fields, why] of refusals) {
      const offer = await offeredBase('ws9', sha('anything'));
      peer.send({
        t: 'sync',
        sync: offer.id,
        workspace: 'ws9',
        entries: [],
        base: offer.base,
        preserve: [],
        last: true,
        ...fields,
      });
      const failed = await peer.next();
      assert.equal(failed.t, 'syncFailed', JSON.stringify(failed));
      assert.equal(failed.t === 'syncFailed' && failed.code, ErrorCode.BadField);
      assert.match(failed.t === 'syncFailed' ? failed.message : '', why);
    }
    assert.equal(await run('ws9', 'cat a d/b new; ls'), `${a}${c}${a}a\nd\nnew\n`);
  });

  /** A `syncCheck` without digest: whether the agent takes the sync streamed. */
  async function probe(workspace: string): Promise<{ id: string; stream: boolean }> {
    const id = `s${++n}`;
    peer.send({ t: 'syncCheck', sync: id, workspace });
    const stale = await until('syncStale');
    assert.equal(stale.sync, id);
    assert.equal(stale.base, undefined, 'a probe is offered no base');
    return { id, stream: stale.stream === true };
  }

  function part(
    id: string,
    workspace: string,
    entries: ManifestEntry[],
    last: boolean,
    extra: Partial<Extract<Message, { t: 'sync' }>> = {},
  ): void {
    peer.send({ t: 'sync', sync: id, workspace, entries, preserve: [], last, ...extra });
  }

  function blob(id: string, body: string): void {
    const data = Buffer.from(body);
    peer.send({ t: 'blob', sync: id, hash: sha(body), size: data.length, offset: 0, data });
  }

  async function failure(): Promise<{ code: string; message: string }> {
    const m = await peer.next();
    assert.equal(m.t, 'syncFailed', JSON.stringify(m));
    return m as Extract<Message, { t: 'syncFailed' }>;
  }

  it('takes a first sync streamed: parts in any order, contents unasked after each, the rest asked for last', async () => {
    const [a, b, c, d] = ['alpha\n', 'beta\n', 'gamma\n', 'delta\n'];
    const { id, stream } = await probe('wsS1');
    assert.equal(stream, true, 'an agent with no copy takes the sync streamed');
    part(id, 'wsS1', [file('z/late', a), file('b', b), file('z/again', a)], false);
    blob(id, a);
    blob(id, b);
    part(id, 'wsS1', [file('c', c)], false);
    // c is not pushed (a dispatcher that did not keep it): asked for at the end with d.
    const whole = [file('b', b), file('c', c), file('d', d), { path: 'l', link: 'b' }];
    whole.push(file('z/again', a), file('z/late', a));
    part(id, 'wsS1', [{ path: 'l', link: 'b' }, file('d', d)], true, {
      digest: manifestDigest(whole),
    });
    const need = await until('syncNeed');
    assert.deepEqual([...need.hashes].sort(), [sha(c), sha(d)].sort());
    blob(id, c);
    blob(id, d);
    assert.equal((await until('syncDone')).written, 6);
    assert.equal(await run('wsS1', 'cat b c d l z/late z/again'), `${b}${c}${d}${b}${a}${a}`);
    const synced = agent.logs.find((l) => l.msg === 'workspace synced' && l.workspace === 'wsS1');
    assert.equal(synced?.streamed, 3, 'the agent logs a streamed sync and its parts');
    // Laid out as the sorted manifest: a check by its digest finds the copy as it is.
    peer.send({
      t: 'syncCheck',
      sync: 'sS1check',
      workspace: 'wsS1',
      digest: manifestDigest(whole),
    });
    assert.equal((await until('syncDone')).sync, 'sS1check');
  });

  it('lays out a streamed sync over a copy another sync made meanwhile', async () => {
    const [a, b, c] = ['one\n', 'two\n', 'three\n'];
    const { id, stream } = await probe('wsS4');
    assert.equal(stream, true);
    part(id, 'wsS4', [file('a', a), file('b', b)], false);
    blob(id, a);
    blob(id, b);
    // Another dispatcher's sync lays out a copy first, with another b.
    const other = [file('a', a), file('b', c)];
    assert.equal((await sync('wsS4', other, { [sha(a)]: a, [sha(c)]: c })).t, 'syncDone');
    const whole = [file('a', a), file('b', b), file('n', c)];
    part(id, 'wsS4', [file('n', c)], true, { digest: manifestDigest(whole) });
    const need = await until('syncNeed');
    assert.deepEqual(need.hashes, [], 'c is in the copy now, a and b came streamed');
    assert.equal((await until('syncDone')).t, 'syncDone');
    assert.equal(await run('wsS4', 'cat a b n'), `${a}${b}${c}`);
  });

  it('takes no sync streamed once it has a copy, and a digest alone is then no sync', async () => {
    const a = 'copy\n';
    assert.equal((await sync('wsS2', [file('a', a)], { [sha(a)]: a })).t, 'syncDone');
    const { id, stream } = await probe('wsS2');
    assert.equal(stream, false, 'a copy that exists may be reused: it is synced as usual');
    part(id, 'wsS2', [file('a', a)], true, { digest: manifestDigest([file('a', a)]) });
    assert.match((await failure()).message, /come with sync.base/);
  });

  it('refuses a streamed sync whose paths are unsafe, whose contents were not listed, or whose parts do not make the digest; lays nothing out', async () => {
    const a = 'streamed\n';
    const escape = await probe('wsS3');
    part(escape.id, 'wsS3', [file('../outside', a)], false);
    const bad = await failure();
    assert.equal(bad.code, ErrorCode.BadPath);
    assert.ok(!existsSync(join(agent.workdir, 'workspaces', 'outside')), 'nothing written above');

    const early = await probe('wsS3');
    blob(early.id, a);
    assert.match((await failure()).message, /was not asked for/);

    const wrong = await probe('wsS3');
    part(wrong.id, 'wsS3', [file('a', a)], false);
    blob(wrong.id, a);
    part(wrong.id, 'wsS3', [], true, { digest: manifestDigest([file('b', a)]) });
    const mismatch = await failure();
    assert.equal(mismatch.code, ErrorCode.BadField);
    assert.match(mismatch.message, /do not make the manifest/);

    const undigested = await probe('wsS3');
    part(undigested.id, 'wsS3', [file('a', a)], true);
    assert.match((await failure()).message, /carries its manifest's digest/);

    // A link in one part and a file below it in a later one: staged in the
    // agent's own folder, never through the link, and refused once whole.
    const through = await probe('wsS3');
    part(through.id, 'wsS3', [{ path: 'l', link: '.' }], false);
    part(through.id, 'wsS3', [file('l/x', a)], false);
    blob(through.id, a);
    const whole = [{ path: 'l', link: '.' }, file('l/x', a)];
    part(through.id, 'wsS3', [], true, { digest: manifestDigest(whole) });
    assert.equal((await failure()).code, ErrorCode.BadPath);

    assert.equal((await probe('wsS3')).stream, true, 'still no copy: none was laid out');
    assert.deepEqual(
      readdirSync(join(agent.workdir, 'workspaces', 'wsS3', 'incoming')),
      [],
      'what the refused syncs staged is gone',
    );
  });

  it('takes a renamed or copied file from its own copy instead of asking for it again', async () => {
    const one = 'first file\n';
    const two = 'second file\n';
    await sync('ws5', [file('src/one.c', one), file('src/two.c', two)], {
      [sha(one)]: one,
      [sha(two)]: two,
    });
    // one.c moved to lib/, and two.c copied beside itself: nothing new to send.
    const id = `s${++n}`;
    const moved = [file('lib/one.c', one), file('src/two.c', two), file('src/two-copy.c', two)];
    peer.send({ t: 'sync', sync: id, workspace: 'ws5', entries: moved, preserve: [], last: true });
    const need = await until('syncNeed');
    assert.deepEqual(need.hashes, []);
    const done = await until('syncDone');
    assert.equal(done.written, 2);
    assert.equal(done.removed, 1);
    assert.equal(
      await run('ws5', 'cat lib/one.c src/two.c src/two-copy.c; ls src | tr "\\n" " "'),
      `${one}${two}${two}two-copy.c two.c `,
    );
    // Each path has a file of its own: writing one does not change the other.
    assert.equal(await run('ws5', 'echo x >> src/two-copy.c; cat src/two.c'), two);
  });

  it('never lays out a sync from a plan another sync of the copy made stale', async () => {
    const [a, b, y] = ['version a\n', 'version b\n', 'new file\n'];
    assert.equal((await sync('ws6', [file('x.txt', a)], { [sha(a)]: a })).t, 'syncDone');
    // Two syncs planned against the same copy: one changes x.txt, the other keeps it as it is.
    peer.send({
      t: 'sync',
      sync: 'race-1',
      workspace: 'ws6',
      entries: [file('x.txt', b)],
      preserve: [],
      last: true,
    });
    assert.deepEqual((await until('syncNeed')).hashes, [sha(b)]);
    const keep = [file('x.txt', a), file('y.txt', y)];
    peer.send({
      t: 'sync',
      sync: 'race-2',
      workspace: 'ws6',
      entries: keep,
      preserve: [],
      last: true,
    });
    assert.deepEqual((await until('syncNeed')).hashes, [sha(y)], 'x.txt looked unchanged then');
    const blob = (id: string, body: string): void =>
      peer.send({
        t: 'blob',
        sync: id,
        hash: sha(body),
        size: body.length,
        offset: 0,
        data: Buffer.from(body),
      });
    blob('race-1', b);
    const first = await peer.next();
    assert.equal(first.t === 'syncDone' && first.sync, 'race-1');
    blob('race-2', y);
    const second = await peer.next();
    if (second.t === 'syncDone')
      assert.equal(await run('ws6', 'cat x.txt'), a, 'x.txt as race-2 asked');
    else {
      // The content it planned to keep was gone: it says so rather than lay out a wrong copy.
      assert.equal(second.t === 'syncFailed' && second.code, ErrorCode.BadContent);
      assert.match(second.t === 'syncFailed' ? second.message : '', /run again/);
    }
  });

  it('rejects a blob whose bytes do not match its hash, and lays nothing out', async () => {
    const real = 'real\n';
    const result = await sync('ws3', [file('x.txt', real)], { [sha(real)]: 'forged' });
    assert.equal(result.t, 'syncFailed');
    assert.equal(result.t === 'syncFailed' && result.code, ErrorCode.BadContent);
    assert.equal(await run('ws3', 'true'), `refused ${ErrorCode.NoWorkspace}`);
  });

  /** A sync whose contents all go in one `blobs` frame, `bodies` cut by `sizes` (the real ones by default). */
  async function syncBatched(
    workspace: string,
    entries: ManifestEntry[],
    bodies: string[],
    sizes = bodies.map((b) => Buffer.byteLength(b)),
  ): Promise<Message> {
    const id = `s${++n}`;
    peer.send({ t: 'sync', sync: id, workspace, entries, preserve: [], last: true });
    const need = await until('syncNeed');
    assert.equal(need.hashes.length, bodies.length);
    const hashes = entries.flatMap((e) => ('hash' in e ? [e.hash] : []));
    peer.send({ t: 'blobs', sync: id, hashes, sizes, data: Buffer.from(bodies.join('')) });
    return peer.next();
  }

  it('takes many contents in one blobs frame', async () => {
    const bodies = ['one\n', 'two\n', '', 'four\n'];
    const entries = bodies.map((b, i) => file(`d/f${i}`, b));
    const done = await syncBatched('ws-batch', entries, bodies);
    assert.equal(done.t, 'syncDone', JSON.stringify(done));
    assert.equal(await run('ws-batch', 'cat d/f0 d/f1 d/f2 d/f3'), 'one\ntwo\nfour\n');
  });

  it('rejects a blobs frame with one content that does not match its hash, and lays nothing out', async () => {
    const bodies = ['one\n', 'two\n'];
    const entries = bodies.map((b, i) => file(`f${i}`, b));
    const result = await syncBatched('ws-batch-bad', entries, ['one\n', 'TWO\n']);
    assert.equal(
      result.t === 'syncFailed' && result.code,
      ErrorCode.BadContent,
      JSON.stringify(result),
    );
    assert.equal(await run('ws-batch-bad', 'true'), `refused ${ErrorCode.NoWorkspace}`);
  });

  it('closes the connection on a blobs frame whose sizes do not cut its data', async () => {
    const bodies = ['one\n', 'two\n'];
    const entries = bodies.map((b, i) => file(`f${i}`, b));
    const result = await syncBatched('ws-batch-cut', entries, bodies, [4, 5]);
    assert.equal(result.t === 'error' && result.code, ErrorCode.BadField, JSON.stringify(result));
    assert.match(
      result.t === 'error' ? result.message : '',
      /sizes add up to 9 bytes but data holds 8/,
    );
  });

  const hostile: Array<[string, ManifestEntry[]]> = [
    ['an absolute path', [file('/etc/evil', 'x')]],
    ['a .. segment', [file('../../evil', 'x')]],
    ['a .. inside', [file('a/../../evil', 'x')]],
    ['a backslash path', [file('..\\evil', 'x')]],
    ['a .git path', [file('.git/hooks/pre-commit', 'x')]],
    ['a symlink leading out', [{ path: 'out', link: '../../../etc' }]],
    ['an absolute symlink', [{ path: 'out', link: '/etc/passwd' }]],
    ['a file through a symlink', [{ path: 'd', link: '.' }, file('d/x', 'x')]],
    ['a path listed twice', [file('a', 'x'), file('a', 'y')]],
  ];
  for (const [what, entries] of hostile) {
    it(`refuses ${what} with E_BAD_PATH, writing nothing`, async () => {
      const result = await sync('hostile', entries, {});
      assert.equal(result.t, 'syncFailed', JSON.stringify(result));
      assert.equal(result.t === 'syncFailed' && result.code, ErrorCode.BadPath);
      assert.equal(existsSync(join(agent.workdir, 'workspaces', 'hostile')), false);
      assert.equal(existsSync(join(agent.workdir, '..', 'evil')), false);
    });
  }

  it('closes the connection on a manifest whose columns disagree (a NUL in a name makes two paths)', async () => {
    // Our encoder joins the paths with NUL, so this path arrives as two names for one hash.
    peer.send({
      t: 'sync',
      sync: `s${++n}`,
      workspace: 'nul',
      entries: [file('a\0b', 'x')],
      preserve: [],
      last: true,
    });
    const result = await peer.next();
    assert.equal(result.t === 'error' && result.code, ErrorCode.BadField, JSON.stringify(result));
    assert.match(
      result.t === 'error' ? result.message : '',
      /sync\.columns do not make a manifest/,
    );
    assert.equal(existsSync(join(agent.workdir, 'workspaces', 'nul')), false);
  });

  it('refuses a workspace name that could leave its folder', async () => {
    const result = await sync('../escape', [], {});
    assert.equal(result.t === 'syncFailed' && result.code, ErrorCode.BadPath);
  });

  it('refuses a cwd that leaves the workspace', async () => {
    peer.send({
      t: 'run',
      task: 'cwd-escape',
      command: 'pwd',
      env: {},
      timeoutMs: 0,
      workspace: 'ws1',
      cwd: '../..',
    });
    const m = await until('refused');
    assert.equal(m.code, ErrorCode.BadPath);
  });
});
