/**
 * What the editor's dispatcher remembers across a window reload or its own
 * crash: its id, its tasks (latest record each), their output (bounded per
 * task) and the event log, kept in one append-only JSON Lines file.
 *
 * Plain `node:fs`, no native addon, so it loads in VS Code's Electron
 * extension host as it does under Node. Appending whole lines means a crash
 * mid-write can only tear the last line, which reading skips and opening cuts
 * off, so the next record starts on a line of its own.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FINAL_STATUSES } from '../../shared/protocol';
import type { LogEvent, TaskInfo, TaskSpec } from '../../shared/rpc';

/** Where a task's current attempt runs, so a restarted dispatcher can reattach to it. */
export interface JournalAttempt {
  /** The agent's address as dialled (host:port). */
  agentAddress: string;
  /** The task's id on that agent's connection. */
  wireId: string;
  /** The last output sequence number received from this attempt. */
  lastSeq: number;
}

/** One task as journaled: everything needed to queue it again or reattach to it. */
export interface JournalTask {
  info: TaskInfo;
  spec: TaskSpec;
  /** The local folder its workspace was synced from, when it has one. */
  workspaceRoot?: string;
  attempt?: JournalAttempt;
}

export interface OutputChunk {
  stream: 'stdout' | 'stderr';
  text: string;
}

/** The journal as read back: what a restarted dispatcher starts from. */
export interface JournalState {
  dispatcherId: string;
  /** Latest record per task, in the order the tasks were first journaled. */
  tasks: JournalTask[];
  /** Each task's output in order, stdout and stderr interleaved as they came. */
  outputs: Map<string, OutputChunk[]>;
  /** The last `maxEvents` events, oldest first. */
  events: LogEvent[];
  /** Per task, the attempt and seq of the last output chunk journaled (when `output` was told). */
  seqs: Map<string, { wireId: string; seq: number }>;
  /** Lines that could not be read (a torn last line, damage); skipped. */
  damagedLines: number;
}

export interface JournalOptions {
  /** Output kept per task, in UTF-8 bytes; default 2 MiB, as the editor's views keep. */
  maxOutputBytesPerTask?: number;
  /** Finished tasks kept, newest by end time; default 200, as the editor's views keep. */
  maxFinishedTasks?: number;
  /** Events kept; default 1000. */
  maxEvents?: number;
  /** Opening rewrites a file above this size that is more than half dead; default 8 MiB. */
  compactAboveBytes?: number;
  /** A batched write that failed (disk full, I/O error); its records are dropped. */
  onError?: (error: Error) => void;
}

const MiB = 1024 * 1024;
const FILE = 'journal.jsonl';
const ID_FILE = 'dispatcher-id';
const FLUSH_MS = 50;
// Above this many batched characters a write is made at once, to bound memory.
const FLUSH_CHARS = MiB;
const READ_BLOCK = 4 * MiB;
// What an event or a small record takes, about, where only counts are kept.
const EVENT_BYTES = 200;

type Stream = OutputChunk['stream'];
type JournalRecord =
  | { k: 'task'; task: JournalTask }
  // w, q: the attempt (wire id) and seq of the record's last chunk, so a restarted
  // dispatcher asks the agent only for what the journal lacks.
  | { k: 'out'; id: string; s: Stream; x: string; cut?: true; w?: string; q?: number }
  | { k: 'event'; e: LogEvent }
  | { k: 'forget'; id: string };

interface Limits {
  maxOutput: number;
  maxFinished: number;
  maxEvents: number;
}

/** What the journal knows of each task without keeping its output in memory. */
interface TaskMark {
  /** Output journaled, in UTF-8 bytes. */
  bytes: number;
  cut: boolean;
  atLineStart: boolean;
  /** The size of its latest record, to estimate what a compacted file would take. */
  recordBytes: number;
  /** When it ended (for dropping the oldest finished); null while not final. */
  endedAt: number | null;
}

function markFor(task: JournalTask, previous: TaskMark | undefined, recordBytes: number): TaskMark {
  const mark = previous ?? { bytes: 0, cut: false, atLineStart: true, recordBytes, endedAt: null };
  mark.recordBytes = recordBytes;
  mark.endedAt = FINAL_STATUSES.has(task.info.status)
    ? (task.info.endedAt ?? task.info.queuedAt)
    : null;
  return mark;
}

/** The finished tasks beyond `keep`, oldest end first; those that ended together in submission order. */
function oldestFinishedBeyond(marks: ReadonlyMap<string, TaskMark>, keep: number): string[] {
  const finished: Array<[string, number]> = [];
  for (const [id, m] of marks) if (m.endedAt !== null) finished.push([id, m.endedAt]);
  if (finished.length <= keep) return [];
  finished.sort((a, b) => a[1] - b[1]); // stable, and marks are in submission order
  return finished.slice(0, finished.length - keep).map(([id]) => id);
}

/** About what a compacted file would take: the tasks kept, their output, the events kept. */
function liveBytes(marks: ReadonlyMap<string, TaskMark>, events: number, limits: Limits): number {
  const dropped = new Set(oldestFinishedBeyond(marks, limits.maxFinished));
  let live = Math.min(events, limits.maxEvents) * EVENT_BYTES;
  for (const [id, m] of marks) if (!dropped.has(id)) live += m.recordBytes + m.bytes;
  return live;
}

/** The dispatcher's journal in one folder; see the file comment. */
export class Journal {
  private pending: JournalRecord[] = [];
  private pendingChars = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private fileBytes: number;
  private nextCompactionCheck = 0;
  private events: number;

  private constructor(
    readonly dispatcherId: string,
    private readonly file: string,
    private fd: number,
    private readonly limits: Limits,
    private marks: Map<string, TaskMark>,
    // Handed to the first load() if nothing was written since opening, to read the file once.
    private opened: JournalState | undefined,
    private readonly compactAbove: number,
    private readonly onError: (error: Error) => void,
  ) {
    this.fileBytes = fs.fstatSync(fd).size;
    this.events = opened?.events.length ?? 0;
    this.scheduleCompactionCheck();
  }

  /** Opens (creating `dir`, mode 0700, if needed) and compacts a journal grown mostly dead. */
  static open(dir: string, options: JournalOptions = {}): Journal {
    const limits: Limits = {
      maxOutput: options.maxOutputBytesPerTask ?? 2 * MiB,
      maxFinished: options.maxFinishedTasks ?? 200,
      maxEvents: options.maxEvents ?? 1000,
    };
    const compactAbove = options.compactAboveBytes ?? 8 * MiB;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    removeStaleTemps(dir);
    const dispatcherId = dispatcherIdIn(dir);
    const file = path.join(dir, FILE);
    const read = readJournal(file, dispatcherId, limits);
    // A torn last line would otherwise swallow the start of the next record.
    if (read.completeBytes < read.fileBytes) fs.truncateSync(file, read.completeBytes);
    // Opening has read the file anyway, so it rewrites at half dead; later, at three quarters.
    const live = liveBytes(read.marks, read.state.events.length, limits);
    if (read.completeBytes > Math.max(compactAbove, 2 * live))
      writeCompacted(file, read.state, read.marks);
    const fd = fs.openSync(file, 'a', 0o600);
    const onError = options.onError ?? (() => undefined);
    return new Journal(
      dispatcherId,
      file,
      fd,
      limits,
      read.marks,
      read.state,
      compactAbove,
      onError,
    );
  }

  /**
   * Journals a task's latest state, synchronously: once this returns, the
   * record survives the process dying. It is not fsynced: a process crash,
   * SIGKILL or window reload loses nothing that reached write(2), and only a
   * machine crash could lose the last seconds, a case the agents' grace
   * window covers anyway; an fsync per state change would stall the event
   * loop for milliseconds on many disks. Throws if the write fails (disk
   * full), and the batched output written with it is then lost too.
   */
  task(record: JournalTask): void {
    this.assertOpen();
    const id = record.info.id;
    const size = this.writeNow({ k: 'task', task: record });
    this.marks.set(id, markFor(record, this.marks.get(id), size));
  }

  /** Journals a chunk of output, batched; beyond the cap, one marker line and nothing more. */
  output(task: string, stream: Stream, text: string, at?: { wireId: string; seq: number }): void {
    // After close (shutdown), late output is dropped rather than thrown on.
    const mark = this.marks.get(task);
    if (this.closed || mark === undefined || text === '') return;
    const where = at ? { w: at.wireId, q: at.seq } : {};
    if (mark.cut) {
      // Nothing more is kept, but where the output stands still is.
      if (at) this.queue({ k: 'out', id: task, s: stream, x: '', ...where });
      return;
    }
    const bytes = Buffer.byteLength(text);
    if (mark.bytes + bytes <= this.limits.maxOutput) {
      mark.bytes += bytes;
      mark.atLineStart = text.endsWith('\n');
      this.queue({ k: 'out', id: task, s: stream, x: text, ...where });
      return;
    }
    const kept = utf8Prefix(text, this.limits.maxOutput - mark.bytes);
    const atLineStart = kept === '' ? mark.atLineStart : kept.endsWith('\n');
    const x = kept + (atLineStart ? '' : '\n') + cutMarker(this.limits.maxOutput);
    mark.bytes += Buffer.byteLength(x);
    mark.cut = true;
    this.queue({ k: 'out', id: task, s: stream, x, cut: true, ...where });
  }

  /** Journals an event-log line, batched. */
  event(event: LogEvent): void {
    if (!this.closed) this.queue({ k: 'event', e: event });
  }

  /** Drops a task and its output from the journal (the user cleared it). */
  forget(task: string): void {
    this.assertOpen();
    this.marks.delete(task);
    this.pending = this.pending.filter((r) => r.k !== 'out' || r.id !== task);
    this.writeNow({ k: 'forget', id: task });
  }

  /** The journal as it stands: what a restarted dispatcher starts from. */
  load(): JournalState {
    if (this.opened !== undefined) {
      const state = this.opened;
      this.opened = undefined;
      return state;
    }
    this.flush();
    return readJournal(this.file, this.dispatcherId, this.limits).state;
  }

  /**
   * Rewrites the file with only the live state. Opening does this when the
   * file has grown mostly dead; a long-lived dispatcher may call it when idle
   * (it reads the whole file, synchronously).
   */
  compact(): void {
    this.assertOpen();
    this.flush();
    this.opened = undefined;
    const read = readJournal(this.file, this.dispatcherId, this.limits);
    // Closed over the rename (Windows refuses to replace an open file), reopened even if it fails.
    fs.closeSync(this.fd);
    try {
      writeCompacted(this.file, read.state, read.marks);
    } finally {
      this.fd = fs.openSync(this.file, 'a', 0o600);
    }
    this.fileBytes = fs.fstatSync(this.fd).size;
    this.marks = read.marks;
    this.events = read.state.events.length;
    this.scheduleCompactionCheck();
  }

  /** Writes what is batched now. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0 || this.closed) return;
    const text = serialize(this.pending);
    this.pending = [];
    this.pendingChars = 0;
    this.append(text);
  }

  /** Flushes and closes; later output and events are dropped, task records throw. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.opened = undefined;
    fs.closeSync(this.fd);
  }

  private queue(record: JournalRecord): void {
    this.opened = undefined;
    const last = this.pending[this.pending.length - 1];
    if (
      record.k === 'out' &&
      last?.k === 'out' &&
      last.id === record.id &&
      last.s === record.s &&
      last.w === record.w
    ) {
      // One record per run of chunks: fewer lines, less JSON to write and read.
      last.x += record.x;
      if (record.cut) last.cut = true;
      if (record.q !== undefined) last.q = record.q;
    } else {
      this.pending.push(record);
    }
    if (record.k === 'event') this.events++;
    this.pendingChars += record.k === 'out' ? record.x.length : EVENT_BYTES;
    if (this.pendingChars >= FLUSH_CHARS) this.flushReporting();
    else this.timer ??= setTimeout(() => this.flushReporting(), FLUSH_MS).unref();
  }

  private flushReporting(): void {
    try {
      this.flush();
      this.compactIfMostlyDead();
    } catch (error) {
      this.pending = [];
      this.pendingChars = 0;
      this.onError(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Writes the batch and then `record` at once, keeping the order of the calls; returns the record's size. */
  private writeNow(record: JournalRecord): number {
    this.opened = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const line = JSON.stringify(record) + '\n';
    const text = serialize(this.pending) + line;
    this.pending = [];
    this.pendingChars = 0;
    this.append(text);
    if (this.fileBytes >= this.nextCompactionCheck)
      this.timer = setTimeout(() => this.flushReporting(), FLUSH_MS).unref();
    return line.length;
  }

  private append(text: string): void {
    const bytes = Buffer.from(text);
    writeAll(this.fd, bytes);
    this.fileBytes += bytes.length;
  }

  /**
   * A long-lived dispatcher's file grows past what it keeps (finished tasks
   * beyond the limit, old events, forgotten tasks). Rewriting reads the whole
   * file synchronously, so it waits until three quarters are dead.
   */
  private compactIfMostlyDead(): void {
    if (this.fileBytes < this.nextCompactionCheck) return;
    const live = liveBytes(this.marks, this.events, this.limits);
    // Scheduled first, so that a compaction that fails is not retried at every flush.
    this.scheduleCompactionCheck();
    if (this.fileBytes > 4 * live) this.compact();
  }

  private scheduleCompactionCheck(): void {
    this.nextCompactionCheck = Math.max(this.compactAbove, this.fileBytes + this.compactAbove / 4);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the journal is closed');
  }
}

/** The line written where a task's kept output ends. */
export function cutMarker(maxBytes: number): string {
  return `[octask: output cut at ${formatBytes(maxBytes)}; the rest was not kept]\n`;
}

function formatBytes(n: number): string {
  if (n % MiB === 0) return `${n / MiB} MiB`;
  if (n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** The longest prefix of `text` within `maxBytes` of UTF-8 that does not split a character. */
function utf8Prefix(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text);
  if (bytes.length <= maxBytes) return text;
  let end = Math.max(0, maxBytes);
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString();
}

function serialize(records: readonly JournalRecord[]): string {
  let text = '';
  for (const r of records) text += JSON.stringify(r) + '\n';
  return text;
}

function writeAll(fd: number, bytes: Buffer): void {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

/** The id kept in `dir`, made once; written whole through a rename so a crash never empties it. */
function dispatcherIdIn(dir: string): string {
  const file = path.join(dir, ID_FILE);
  try {
    const id = fs.readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{16}$/.test(id)) return id;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const id = randomBytes(8).toString('hex');
  const temp = tempName(file);
  fs.writeFileSync(temp, id + '\n', { mode: 0o600, flag: 'wx' });
  fs.renameSync(temp, file);
  return id;
}

function tempName(file: string): string {
  return `${file}.${randomBytes(6).toString('hex')}.tmp`;
}

/** Temporary files a crash left behind (the rename never happened, so they are not the state). */
function removeStaleTemps(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (/^(journal\.jsonl|dispatcher-id)\.[0-9a-f]{12}\.tmp$/.test(name))
      fs.rmSync(path.join(dir, name), { force: true });
  }
}

/**
 * Writes `state` to a temporary file, fsyncs it and renames it over `file`:
 * a crash at any point leaves either the old file or the whole new one.
 */
function writeCompacted(
  file: string,
  state: JournalState,
  marks: ReadonlyMap<string, TaskMark>,
): void {
  const temp = tempName(file);
  const fd = fs.openSync(temp, 'wx', 0o600);
  try {
    let batch: JournalRecord[] = [];
    let chars = 0;
    const put = (r: JournalRecord, size: number): void => {
      batch.push(r);
      chars += size;
      if (chars < FLUSH_CHARS) return;
      writeAll(fd, Buffer.from(serialize(batch)));
      batch = [];
      chars = 0;
    };
    for (const task of state.tasks) put({ k: 'task', task }, 500);
    for (const [id, chunks] of state.outputs) {
      const cut = marks.get(id)?.cut === true;
      chunks.forEach((c, i) => {
        const r: JournalRecord = { k: 'out', id, s: c.stream, x: c.text };
        put(cut && i === chunks.length - 1 ? { ...r, cut: true } : r, c.text.length);
      });
    }
    for (const [id, at] of state.seqs)
      put({ k: 'out', id, s: 'stdout', x: '', w: at.wireId, q: at.seq }, 50);
    for (const e of state.events) put({ k: 'event', e }, EVENT_BYTES);
    writeAll(fd, Buffer.from(serialize(batch)));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, file);
  fsyncDir(path.dirname(file));
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Not every platform can fsync a folder (Windows); the rename itself is still atomic.
  }
}

interface ReadResult {
  state: JournalState;
  marks: Map<string, TaskMark>;
  fileBytes: number;
  /** Where the last whole line ends. */
  completeBytes: number;
}

/** Reads the journal: latest record per task, output per task, last events; limits applied. */
function readJournal(file: string, dispatcherId: string, limits: Limits): ReadResult {
  const tasks = new Map<string, JournalTask>();
  const outputs = new Map<string, OutputChunk[]>();
  const seqs = new Map<string, { wireId: string; seq: number }>();
  const marks = new Map<string, TaskMark>();
  let events: LogEvent[] = [];
  let damagedLines = 0;
  const apply = (r: JournalRecord, size = 0): void => {
    if (r.k === 'task') {
      tasks.set(r.task.info.id, r.task);
      marks.set(r.task.info.id, markFor(r.task, marks.get(r.task.info.id), size));
    } else if (r.k === 'out') {
      const mark = marks.get(r.id);
      if (mark === undefined) return;
      if (r.w !== undefined && r.q !== undefined) seqs.set(r.id, { wireId: r.w, seq: r.q });
      if (r.x === '') return;
      mark.bytes += Buffer.byteLength(r.x);
      mark.cut ||= r.cut === true;
      mark.atLineStart = r.x.endsWith('\n');
      const chunks = outputs.get(r.id) ?? [];
      const last = chunks[chunks.length - 1];
      if (last?.stream === r.s) last.text += r.x;
      else chunks.push({ stream: r.s, text: r.x });
      outputs.set(r.id, chunks);
    } else if (r.k === 'event') {
      events.push(r.e);
      if (events.length >= 2 * limits.maxEvents) events = lastOf(events, limits.maxEvents);
    } else {
      tasks.delete(r.id);
      outputs.delete(r.id);
      seqs.delete(r.id);
      marks.delete(r.id);
    }
  };
  let fileBytes = 0;
  let completeBytes = 0;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    fd = -1;
  }
  if (fd >= 0) {
    try {
      fileBytes = fs.fstatSync(fd).size;
      completeBytes = forEachLine(fd, (line) => {
        const r = parseRecord(line);
        if (r === undefined) damagedLines++;
        else apply(r, line.length + 1);
      });
    } finally {
      fs.closeSync(fd);
    }
    if (completeBytes < fileBytes) damagedLines++;
  }
  for (const id of oldestFinishedBeyond(marks, limits.maxFinished)) apply({ k: 'forget', id });
  events = lastOf(events, limits.maxEvents);
  const state = {
    dispatcherId,
    tasks: [...tasks.values()],
    outputs,
    events,
    seqs,
    damagedLines,
  };
  return { state, marks, fileBytes, completeBytes };
}

/** Calls `onLine` for each whole line; returns where the last one ends. Reads in blocks, as the file may exceed a string's maximum length. */
function forEachLine(fd: number, onLine: (line: string) => void): number {
  const block = Buffer.allocUnsafe(READ_BLOCK);
  let carry: Buffer[] = [];
  let pos = 0;
  let complete = 0;
  for (;;) {
    const n = fs.readSync(fd, block, 0, READ_BLOCK, pos);
    if (n === 0) return complete;
    const view = block.subarray(0, n);
    let start = 0;
    for (let nl = view.indexOf(10); nl !== -1; nl = view.indexOf(10, start)) {
      const piece = view.subarray(start, nl);
      onLine(carry.length > 0 ? Buffer.concat([...carry, piece]).toString() : piece.toString());
      carry = [];
      start = nl + 1;
      complete = pos + start;
    }
    if (start < n) carry.push(Buffer.from(view.subarray(start)));
    pos += n;
  }
}

function lastOf<T>(items: T[], n: number): T[] {
  return n > 0 ? items.slice(-n) : []; // slice(-0) would keep them all
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isJournalTask(v: unknown): v is JournalTask {
  // The file is ours (0600 in a 0700 folder): this guards against damage, not forgery.
  return (
    isObject(v) &&
    isObject(v.info) &&
    typeof v.info.id === 'string' &&
    typeof v.info.status === 'string' &&
    isObject(v.spec) &&
    typeof v.spec.command === 'string'
  );
}

function isLogEvent(v: unknown): v is LogEvent {
  return isObject(v) && typeof v.message === 'string' && typeof v.time === 'number';
}

function parseRecord(line: string): JournalRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isObject(v)) return undefined;
  if (v.k === 'task' && isJournalTask(v.task)) return { k: 'task', task: v.task };
  if (v.k === 'event' && isLogEvent(v.e)) return { k: 'event', e: v.e };
  if (v.k === 'forget' && typeof v.id === 'string') return { k: 'forget', id: v.id };
  if (
    v.k === 'out' &&
    typeof v.id === 'string' &&
    (v.s === 'stdout' || v.s === 'stderr') &&
    typeof v.x === 'string'
  ) {
    const where =
      typeof v.w === 'string' && Number.isSafeInteger(v.q) ? { w: v.w, q: v.q as number } : {};
    return v.cut === true
      ? { k: 'out', id: v.id, s: v.s, x: v.x, cut: true, ...where }
      : { k: 'out', id: v.id, s: v.s, x: v.x, ...where };
  }
  return undefined;
}
