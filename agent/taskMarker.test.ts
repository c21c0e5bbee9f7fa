import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { alive, waitFor } from '../test/helpers/taskProcesses';
import { readStat } from './procfs';
import {
  environHasMarker,
  findMarked,
  isMarker,
  killMarked,
  newMarker,
  TASK_MARKER_VAR,
} from './taskMarker';

const environ = (...entries: string[]): Buffer => Buffer.from(entries.join('\0') + '\0', 'latin1');

describe('task marker', () => {
  it('is 128 random bits in hex, fresh each time', () => {
    const a = newMarker();
    assert.match(a, /^[0-9a-f]{32}$/);
    assert.notEqual(a, newMarker());
    assert.ok(isMarker(a));
    assert.ok(!isMarker(''));
    assert.ok(!isMarker(a.toUpperCase()));
  });

  it('matches only the whole entry, wherever it sits in the environment', () => {
    const m = newMarker();
    const entry = `${TASK_MARKER_VAR}=${m}`;
    assert.ok(environHasMarker(environ(entry, 'PATH=/bin'), m));
    assert.ok(environHasMarker(environ('PATH=/bin', entry), m));
    assert.ok(environHasMarker(Buffer.from(entry), m)); // no trailing NUL
    assert.ok(!environHasMarker(environ(`${entry}0`), m));
    assert.ok(!environHasMarker(environ(`X${entry}`), m));
    assert.ok(!environHasMarker(environ(`OTHER=${entry}`), m));
    assert.ok(!environHasMarker(environ(`${TASK_MARKER_VAR}=${newMarker()}`), m));
  });

  it('refuses to scan for a malformed marker (an empty one would match every process)', () => {
    assert.throws(() => findMarked(''), /not a task marker/);
    assert.throws(() => killMarked('abc', 'SIGKILL'), /not a task marker/);
  });
});

describe('task marker on real processes @integration', () => {
  const started: ChildProcess[] = [];
  let marker: string;
  beforeEach(() => (marker = newMarker()));
  afterEach(() => {
    killMarked(marker, 'SIGKILL');
    for (const c of started.splice(0)) c.kill('SIGKILL');
  });

  function task(script: string, extra: Partial<Parameters<typeof spawn>[2]> = {}): ChildProcess {
    const child = spawn('sh', ['-c', script], {
      env: { ...process.env, [TASK_MARKER_VAR]: marker },
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
      ...extra,
    });
    started.push(child);
    return child;
  }

  it('finds the children that left the group with setsid, one holding stdout, and kills them', async () => {
    // Two children in sessions of their own; the second keeps the task's stdout open.
    const child = task("setsid sleep 301 >/dev/null 2>&1 & setsid sh -c 'sleep 302' & wait");
    let stdoutClosed = false;
    child.stdout?.on('close', () => (stdoutClosed = true));
    const sessionsOf = (): number[] => findMarked(marker).map((pid) => readStat(pid)?.pgrp ?? 0);
    // sh, two sleeps and the sh between setsid and its sleep (unless it execs the sleep).
    await waitFor('three marked processes', () => findMarked(marker).length >= 3);
    // setsid runs marked before it leaves the group: wait until both have left (a loaded machine is slow to).
    await waitFor("both children to leave the task's group", () => new Set(sessionsOf()).size >= 3);
    const groups = new Set(sessionsOf());
    assert.ok(groups.size >= 3, `they left the task's group: groups ${[...groups]}`);
    // The group alone no longer ends them.
    process.kill(-(child.pid as number), 'SIGKILL');
    await waitFor('the group to end', () => !alive(child.pid as number));
    const escaped = findMarked(marker);
    assert.ok(escaped.length >= 2, `setsid children survive the group: ${escaped}`);
    assert.ok(!stdoutClosed, 'the escaped child still holds stdout');

    assert.equal(killMarked(marker, 'SIGKILL'), escaped.length);
    await waitFor('no marked process', () => findMarked(marker).length === 0);
    await waitFor('stdout to close', () => stdoutClosed);
  });

  it('reads only processes started after the leader when told its pid, and still finds its children', async () => {
    // An older process with the same marker (never so in real life) shows what is not read.
    const older = task('exec sleep 306');
    await waitFor('the older one', () => findMarked(marker).includes(older.pid as number));
    const child = task('setsid sleep 305 & wait');
    const leader = child.pid as number;
    await waitFor('the leader and its child', () => findMarked(marker).length >= 3);
    const newer = findMarked(marker, undefined, leader);
    assert.ok(newer.includes(leader), 'the leader itself is read');
    assert.ok(newer.length >= 2, `its setsid child is found: ${newer}`);
    assert.ok(!newer.includes(older.pid as number), 'a process older than the leader was read');
  });

  it('finds processes of another uid and leaves unmarked ones alone', async () => {
    const other = task('exec sleep 303', { uid: 65534, gid: 65534 });
    const unmarked = spawn('sleep', ['304'], { stdio: 'ignore' });
    started.push(unmarked);
    await waitFor('the other uid to run', () => findMarked(marker).includes(other.pid as number));
    assert.deepEqual(findMarked(marker), [other.pid]);
    assert.equal(killMarked(marker, 'SIGTERM'), 1);
    await waitFor('it to end', () => !alive(other.pid as number));
    assert.ok(alive(unmarked.pid as number));
  });

  it('leaves out the process that scans, though it carries the marker', async () => {
    const source = `const { findMarked } = require(${JSON.stringify(require.resolve('./taskMarker'))});
      console.log(JSON.stringify({ pid: process.pid, found: findMarked(process.argv[1]) }));`;
    const scanner = spawn(process.execPath, ['-e', source, marker], {
      env: { ...process.env, [TASK_MARKER_VAR]: marker },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    started.push(scanner);
    let out = '';
    scanner.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    await new Promise((r) => scanner.once('close', r));
    const { pid, found } = JSON.parse(out) as { pid: number; found: number[] };
    assert.equal(pid, scanner.pid);
    assert.deepEqual(found, []);
  });
});
