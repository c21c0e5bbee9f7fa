/**
 * The keeper process's program, run as `node -e KEEPER_SOURCE CONFIG`. It is
 * a string of plain JavaScript for Node 18 because the agent is one .js file
 * copied to a Pi or a phone: there is no file beside it to run. So it cannot
 * import taskMarker.ts and scans /proc itself, the same way (keeper.test.ts
 * checks it finds what findMarked finds).
 *
 * It reads one JSON line per message on stdin from the agent:
 *   {"op":"track","task":ID,"pgid":N,"marker":M}   {"op":"untrack","task":ID}
 * When stdin closes, or its parent changes (the agent died and it was
 * re-parented), it ends every tracked task: SIGTERM to each process group and
 * each process carrying a tracked marker, SIGKILL to what is left after the
 * grace period, then exits. It ignores SIGINT, SIGTERM and SIGHUP, which are
 * meant for the agent (a Ctrl+C, systemd's stop) and must not take the keeper
 * down before the agent. It signals nothing it was not told about.
 */
export interface KeeperConfig {
  markerVar: string;
  graceMs: number;
}

export const KEEPER_SOURCE = String.raw`'use strict';
const fs = require('fs');
const config = JSON.parse(process.argv[1]);
const MARKER = /^[0-9a-f]{32}$/;
const tasks = new Map();
const agentPid = process.ppid;
let ending = false;

process.title = 'octask-keeper';
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => {});

function hasEntry(environ, entry) {
  for (let at = environ.indexOf(entry); at >= 0; at = environ.indexOf(entry, at + 1)) {
    const end = at + entry.length;
    if ((at === 0 || environ[at - 1] === 0) && (end === environ.length || environ[end] === 0)) return true;
  }
  return false;
}

function markedPids() {
  const entries = [];
  for (const t of tasks.values()) {
    if (t.marker) entries.push(Buffer.from(config.markerVar + '=' + t.marker, 'latin1'));
  }
  if (entries.length === 0) return [];
  let names;
  try { names = fs.readdirSync('/proc'); } catch { return []; }
  const found = [];
  for (const name of names) {
    if (!/^[0-9]+$/.test(name) || Number(name) === process.pid) continue;
    let environ;
    try { environ = fs.readFileSync('/proc/' + name + '/environ'); } catch { continue; }
    if (entries.some((e) => hasEntry(environ, e))) found.push(Number(name));
  }
  return found;
}

// Signal 0 only asks whether anything is left; returns how many targets took the signal.
function signalAll(signal) {
  let reached = 0;
  for (const t of tasks.values()) {
    try { process.kill(-t.pgid, signal); reached++; } catch {}
  }
  for (const pid of markedPids()) {
    try { process.kill(pid, signal); reached++; } catch {}
  }
  return reached;
}

function endAll() {
  if (ending) return;
  ending = true;
  if (tasks.size === 0) process.exit(0);
  signalAll('SIGTERM');
  const deadline = Date.now() + config.graceMs;
  const tick = () => {
    if (signalAll(0) === 0) process.exit(0);
    if (Date.now() < deadline) return void setTimeout(tick, 100);
    signalAll('SIGKILL');
    // Once more for whatever was forked while the first KILL went out.
    setTimeout(() => { signalAll('SIGKILL'); process.exit(0); }, 100);
  };
  setTimeout(tick, 100);
}

function handle(line) {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  if (!m || typeof m.task !== 'string') return;
  if (m.op === 'untrack') tasks.delete(m.task);
  if (m.op !== 'track') return;
  // Never group 0 or 1 (our own group, init), never our own.
  if (!Number.isInteger(m.pgid) || m.pgid <= 1 || m.pgid === process.pid) return;
  tasks.set(m.task, { pgid: m.pgid, marker: MARKER.test(m.marker) ? m.marker : undefined });
}

let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  if (ending) return;
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf('\n')) >= 0) {
    handle(buffered.slice(0, nl));
    buffered = buffered.slice(nl + 1);
  }
});
process.stdin.on('end', endAll);
process.stdin.on('close', endAll);
process.stdin.on('error', endAll);
// A leaked copy of the pipe's write end would hide the agent's death; the parent changing cannot.
setInterval(() => { if (process.ppid !== agentPid) endAll(); }, 1000);
`;
