import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TaskStatus } from '../../shared/protocol';
import type { TaskInfo } from '../../shared/rpc';
import { cutMarker, Journal, type JournalTask } from './journal';

function record(
  id: string,
  status: TaskStatus = 'pending',
  info: Partial<TaskInfo> = {},
): JournalTask {
  return {
    info: {
      id,
      group: id,
      command: `echo ${id}`,
      status,
      agent: null,
      shard: null,
      shardCount: 1,
      exitCode: null,
      signal: null,
      attempts: 0,
      queuedAt: 1000,
      startedAt: null,
      endedAt: null,
      durationMs: null,
      agentRoot: null,
      error: null,
      phase: 'queued',
      ahead: null,
      previousAgent: null,
      retryReason: null,
      ...info,
    },
    spec: { command: `echo ${id}` },
  };
}

function textOf(chunks: ReadonlyArray<{ text: string }> | undefined): string {
  return (chunks ?? []).map((c) => c.text).join('');
}

const built = JSON.stringify(path.join(__dirname, 'journal.js'));

/** Runs `script` in a child node that prints a line per step; resolves after `lines` lines. */
async function childReporting(
  script: string,
  lines: number,
): Promise<{ child: ChildProcess; reported: string[] }> {
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const reported: string[] = [];
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`the writer exited by itself (${code})`)));
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => {
      buffered += d;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      reported.push(...parts);
      if (reported.length >= lines) resolve();
    });
  });
  child.removeAllListeners('exit');
  return { child, reported };
}

async function killHard(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', (_c, signal) => r(signal)));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
}

describe('journal', () => {
  let dir: string;
  beforeEach(() => {
    dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'octask-journal-')), 'state');
  });
  afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

  const file = (): string => path.join(dir, 'journal.jsonl');

  it('reads back tasks, interleaved output and events after a reopen', () => {
    const j = Journal.open(dir);
    const running = {
      ...record('a', 'running', { agent: 'pi', startedAt: 2000 }),
      workspaceRoot: '/home/me/proj',
      attempt: { agentAddress: '198.51.100.2:7879', wireId: 'w1', lastSeq: 41 },
    };
    j.task(running);
    j.output('a', 'stdout', 'one\n');
    j.output('a', 'stderr', 'oops\n');
    j.output('a', 'stdout', 'two\n');
    j.event({ level: 'info', message: 'pi online', fields: { agent: 'pi' }, time: 5 });
    j.close();

    const state = Journal.open(dir).load();
    assert.deepEqual(state.tasks, [running]);
    assert.deepEqual(state.outputs.get('a'), [
      { stream: 'stdout', text: 'one\n' },
      { stream: 'stderr', text: 'oops\n' },
      { stream: 'stdout', text: 'two\n' },
    ]);
    assert.deepEqual(state.events, [
      { level: 'info', message: 'pi online', fields: { agent: 'pi' }, time: 5 },
    ]);
    assert.equal(state.damagedLines, 0);
  });

  it('keeps the latest record per task, in submission order, and forgets', () => {
    const j = Journal.open(dir);
    j.task(record('a'));
    j.task(record('b'));
    j.task(record('c'));
    j.output('b', 'stdout', 'b out\n');
    j.task(record('a', 'running', { attempts: 1 }));
    j.task(record('a', 'completed', { exitCode: 0, attempts: 1, endedAt: 3000 }));
    j.forget('b');
    j.output('b', 'stdout', 'late output of a forgotten task\n');
    j.close();

    const state = Journal.open(dir).load();
    assert.deepEqual(
      state.tasks.map((t) => [t.info.id, t.info.status, t.info.exitCode]),
      [
        ['a', 'completed', 0],
        ['c', 'pending', null],
      ],
    );
    assert.equal(state.outputs.has('b'), false);
  });

  it('has a task record on disk when task() returns, and output only once flushed', () => {
    const j = Journal.open(dir);
    j.task(record('a'));
    assert.match(fs.readFileSync(file(), 'utf8'), /"id":"a"/);
    j.output('a', 'stdout', 'batched\n');
    assert.doesNotMatch(fs.readFileSync(file(), 'utf8'), /batched/);
    j.flush();
    assert.match(fs.readFileSync(file(), 'utf8'), /batched/);
    j.close();
  });

  it('flushes batched output by itself within a moment', async () => {
    const j = Journal.open(dir);
    j.task(record('a'));
    j.output('a', 'stdout', 'soon\n');
    const end = Date.now() + 5000;
    while (!fs.readFileSync(file(), 'utf8').includes('soon') && Date.now() < end)
      await new Promise((r) => setTimeout(r, 10));
    assert.match(fs.readFileSync(file(), 'utf8'), /soon/);
    j.close();
  });

  it('load() in the same session includes what was written since opening', () => {
    const j = Journal.open(dir);
    j.task(record('a'));
    j.output('a', 'stdout', 'x');
    j.event({ level: 'warn', message: 'w', time: 1 });
    const state = j.load();
    assert.equal(textOf(state.outputs.get('a')), 'x');
    assert.equal(state.events.length, 1);
    j.close();
  });

  it('ignores a torn last line, loses nothing before it, and appends after it cleanly', () => {
    const j = Journal.open(dir);
    j.task(record('a'));
    j.output('a', 'stdout', 'kept\n');
    j.close();
    const whole = JSON.stringify({ k: 'task', task: record('torn') });
    fs.appendFileSync(file(), whole.slice(0, whole.length >> 1));

    const again = Journal.open(dir);
    const state = again.load();
    assert.deepEqual(
      state.tasks.map((t) => t.info.id),
      ['a'],
    );
    assert.equal(textOf(state.outputs.get('a')), 'kept\n');
    assert.equal(state.damagedLines, 1);
    again.task(record('b'));
    again.close();

    const after = Journal.open(dir).load();
    assert.deepEqual(
      after.tasks.map((t) => t.info.id),
      ['a', 'b'],
    );
    assert.equal(after.damagedLines, 0);
  });

  it('skips a damaged line in the middle and reads the rest', () => {
    const j = Journal.open(dir);
    j.task(record('a'));
    j.close();
    fs.appendFileSync(file(), '{"k":"task","task":{"info":7}}\nnot json\n');
    const k = Journal.open(dir);
    k.task(record('b'));
    k.close();
    const state = Journal.open(dir).load();
    assert.deepEqual(
      state.tasks.map((t) => t.info.id),
      ['a', 'b'],
    );
    assert.equal(state.damagedLines, 2);
  });

  it('cuts output at the cap with one marker line, also across a reopen', () => {
    const cap = 1024;
    const j = Journal.open(dir, { maxOutputBytesPerTask: cap });
    j.task(record('a'));
    j.task(record('b'));
    j.output('a', 'stdout', 'x'.repeat(1000));
    j.output('a', 'stderr', 'é'.repeat(100)); // 2 bytes each: 12 fit, the 13th is cut
    j.output('a', 'stdout', 'never kept\n');
    j.output('b', 'stdout', 'b'.repeat(1023) + '\n');
    j.output('b', 'stdout', 'over');
    j.close();

    const reopened = Journal.open(dir, { maxOutputBytesPerTask: cap });
    reopened.output('a', 'stdout', 'after reopen\n');
    reopened.close();
    const state = Journal.open(dir, { maxOutputBytesPerTask: cap }).load();
    const a = textOf(state.outputs.get('a'));
    assert.equal(a, 'x'.repeat(1000) + 'é'.repeat(12) + '\n' + cutMarker(cap));
    assert.equal(cutMarker(cap), '[octask: output cut at 1 KiB; the rest was not kept]\n');
    assert.equal(cutMarker(2 * 1024 * 1024).includes('cut at 2 MiB'), true);
    assert.equal(a.split('[octask: output cut').length, 2, 'one marker');
    // Exactly at the cap, the marker starts a line of its own without an extra newline.
    assert.equal(textOf(state.outputs.get('b')), 'b'.repeat(1023) + '\n' + cutMarker(cap));
  });

  it('compacts on open: live state kept, oldest finished tasks dropped, file smaller', () => {
    const options = { maxFinishedTasks: 3, maxEvents: 5, maxOutputBytesPerTask: 4096 };
    const j = Journal.open(dir, options);
    for (let i = 0; i < 10; i++) {
      const id = `done${i}`;
      j.task(record(id));
      j.task(record(id, 'running'));
      j.output(id, 'stdout', `${id} `.repeat(2000)); // cut at 4 KiB
      j.task(record(id, 'completed', { exitCode: 0, endedAt: 10_000 - i })); // done9 ended first
    }
    j.task(record('queued'));
    j.task(record('running', 'running'));
    j.output('running', 'stdout', 'still going\n');
    for (let i = 0; i < 20; i++) j.event({ level: 'info', message: `e${i}`, time: i });
    j.close();
    const before = Journal.open(dir, options).load(); // limits applied, no compaction
    const sizeBefore = fs.statSync(file()).size;
    fs.writeFileSync(path.join(dir, 'journal.jsonl.0123456789ab.tmp'), 'left by a crash');

    const compacted = Journal.open(dir, { ...options, compactAboveBytes: 1 });
    const sizeAfter = fs.statSync(file()).size;
    const state = compacted.load();
    assert.ok(sizeAfter < sizeBefore / 2, `${sizeAfter} < ${sizeBefore} / 2`);
    assert.deepEqual(
      state.tasks.map((t) => t.info.id),
      ['done0', 'done1', 'done2', 'queued', 'running'],
    );
    assert.deepEqual(state, before);
    assert.equal(textOf(state.outputs.get('running')), 'still going\n');
    assert.ok(textOf(state.outputs.get('done0')).endsWith(cutMarker(4096)));
    assert.deepEqual(
      state.events.map((e) => e.message),
      ['e15', 'e16', 'e17', 'e18', 'e19'],
    );
    assert.deepEqual(
      fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')),
      [],
    );
    compacted.close();
    // A cut task stays cut in the compacted file.
    const reopened = Journal.open(dir, options);
    reopened.output('done0', 'stdout', 'more');
    reopened.close();
    const done0 = textOf(Journal.open(dir, options).load().outputs.get('done0'));
    assert.ok(done0.endsWith(cutMarker(4096)));
    assert.equal(done0.split('[octask: output cut').length, 2, 'one marker');
  });

  it("compacts a long session by itself, keeping a running task's output whole", async () => {
    const options = {
      maxFinishedTasks: 2,
      maxOutputBytesPerTask: 1 << 20,
      compactAboveBytes: 64 << 10,
    };
    const j = Journal.open(dir, options);
    j.task(record('long', 'running'));
    let expected = '';
    let largest = 0;
    for (let i = 0; i < 60; i++) {
      const id = `t${i}`;
      j.task(record(id, 'running'));
      j.output(id, 'stdout', `${id} `.repeat(4000));
      j.task(record(id, 'completed', { endedAt: 10_000 + i }));
      j.output('long', 'stderr', `line ${i}\n`);
      expected += `line ${i}\n`;
      if (i % 5 === 4) await new Promise((r) => setTimeout(r, 80));
      largest = Math.max(largest, fs.statSync(file()).size);
    }
    j.close();
    // Without compaction the file would pass 60 × 20 KB = 1.2 MB.
    assert.ok(largest < 600_000, `the file reached ${largest} bytes`);
    const state = Journal.open(dir, options).load();
    assert.deepEqual(
      state.tasks.map((t) => t.info.id),
      ['long', 't58', 't59'],
    );
    assert.deepEqual(state.outputs.get('long'), [{ stream: 'stderr', text: expected }]);
    assert.equal(textOf(state.outputs.get('t59')), 't59 '.repeat(4000));
  });

  it('keeps one dispatcher id across opens, in a folder only its owner reads', () => {
    const first = Journal.open(dir);
    first.close();
    const second = Journal.open(dir);
    second.close();
    assert.match(first.dispatcherId, /^[0-9a-f]{16}$/);
    assert.equal(second.dispatcherId, first.dispatcherId);
    assert.equal(second.load().dispatcherId, first.dispatcherId);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(file()).mode & 0o077, 0);
    const other = Journal.open(path.join(path.dirname(dir), 'other'));
    other.close();
    assert.notEqual(other.dispatcherId, first.dispatcherId);
  });

  it('keeps no events when told to keep none', () => {
    const j = Journal.open(dir, { maxEvents: 0 });
    j.event({ level: 'info', message: 'e', time: 1 });
    j.close();
    assert.deepEqual(Journal.open(dir, { maxEvents: 0 }).load().events, []);
  });

  it('refuses task records after close and drops late output', () => {
    const j = Journal.open(dir);
    j.task(record('a'));
    j.close();
    assert.throws(() => j.task(record('b')), /closed/);
    j.output('a', 'stdout', 'late');
    j.event({ level: 'info', message: 'late', time: 1 });
    const state = Journal.open(dir).load();
    assert.equal(state.outputs.has('a'), false);
    assert.equal(state.events.length, 0);
  });

  it('loads cleanly after the writing process is SIGKILLed mid-stream', async function () {
    this.timeout(30_000);
    // Each round: one task record, then output lines for it; reported once task() returned.
    const script = `
      const { Journal } = require(${built});
      const j = Journal.open(${JSON.stringify(dir)});
      const info = (id) => ({ id, group: id, command: 'x', status: 'running', agent: 'pi',
        shard: null, shardCount: 1, exitCode: null, signal: null, attempts: 1, queuedAt: 1,
        startedAt: 2, endedAt: null, durationMs: null, agentRoot: null, error: null });
      let round = 0;
      const step = () => {
        const id = 't' + round;
        j.task({ info: info(id), spec: { command: 'x' } });
        process.stdout.write(id + '\\n');
        for (let k = 0; k < 200; k++) j.output(id, k % 3 ? 'stdout' : 'stderr', id + ':' + k + '\\n');
        round++;
        setImmediate(step);
      };
      step();
    `;
    const { child, reported } = await childReporting(script, 300);
    await killHard(child);

    const j = Journal.open(dir);
    const state = j.load();
    assert.ok(state.damagedLines <= 1, `damaged lines: ${state.damagedLines}`);
    const ids = new Set(state.tasks.map((t) => t.info.id));
    for (const id of reported) assert.ok(ids.has(id), `task ${id} was reported written`);
    assert.ok(state.outputs.size >= reported.length - 1, 'output of finished rounds kept');
    for (const [id, chunks] of state.outputs) {
      // Whatever was kept is a whole prefix of what was written, in order, each line once.
      const lines = textOf(chunks).split('\n');
      assert.equal(lines.pop(), '', `${id}: ends with a whole line`);
      lines.forEach((line, k) => assert.equal(line, `${id}:${k}`));
    }
    j.task(record('after'));
    j.close();
    const after = Journal.open(dir).load();
    assert.equal(after.damagedLines, 0);
    assert.equal(after.tasks[after.tasks.length - 1]?.info.id, 'after');
  });

  it('leaves the old file or the new one whole when killed while compacting', async function () {
    this.timeout(60_000);
    const options = { maxFinishedTasks: 5, compactAboveBytes: 1 << 40 };
    const j = Journal.open(dir, options);
    for (let i = 0; i < 40; i++) {
      const id = `t${i}`;
      j.task(record(id, 'running'));
      for (let k = 0; k < 200; k++) j.output(id, 'stdout', `${id}:${k} ${'z'.repeat(1000)}\n`);
      j.task(record(id, i % 4 === 0 ? 'running' : 'completed', { endedAt: 5000 + i }));
    }
    j.close();
    const expected = Journal.open(dir, options).load();
    assert.equal(expected.tasks.length, 10 + 5);
    // The child compacts again and again; each kill lands somewhere in read, write, fsync or rename.
    const script = `
      const { Journal } = require(${built});
      const j = Journal.open(${JSON.stringify(dir)}, ${JSON.stringify(options)});
      process.stdout.write('open\\n');
      for (;;) { j.compact(); process.stdout.write('compacted\\n'); }
    `;
    let killedMidWrite = 0;
    // 20 kills, spread over a compaction's length: about a third land while a copy is written.
    for (const delayMs of Array.from({ length: 20 }, (_, i) => (i * 17) % 90)) {
      const { child } = await childReporting(script, 1);
      await new Promise((r) => setTimeout(r, delayMs));
      await killHard(child);
      const names = fs.readdirSync(dir);
      const state = Journal.open(dir, options).load();
      assert.deepEqual(state, expected, `killed ${delayMs} ms after opening`);
      assert.deepEqual(
        names.filter((n) => n !== 'journal.jsonl' && n !== 'dispatcher-id' && !n.endsWith('.tmp')),
        [],
      );
      if (names.some((n) => n.endsWith('.tmp'))) killedMidWrite++;
    }
    // Proof that the kills hit the window this test is about, not only the gaps between.
    assert.ok(killedMidWrite > 0, 'no kill landed while a compacted copy was being written');
  });
});
