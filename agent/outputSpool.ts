import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import type { OutputStream } from '../shared/protocol';

/** One chunk of a task's output, numbered from 0. */
export interface SpooledChunk {
  seq: number;
  stream: OutputStream;
  data: Buffer;
}

interface Segment {
  path: string;
  fd: number;
  bytes: number;
  /** seq → where its bytes are in this segment. */
  index: Array<{ seq: number; stream: OutputStream; offset: number; length: number }>;
}

/** Default bound on the output kept per task (the newest is kept). */
export const SPOOL_BYTES = 8 * 1024 * 1024;

/**
 * A task's output on disk, numbered, so a dispatcher that reconnects gets
 * what it missed. Bounded: two segments of half the limit each; when the
 * newer fills, the older is dropped, and a reader that asks for dropped
 * chunks gets one marker chunk saying how much was cut. A write that fails
 * (a full disk) stops the spooling, never the task.
 */
export class OutputSpool {
  private segments: Segment[] = [];
  private next = 0;
  /** Bytes of output dropped from the front (rotation) or never written (disk trouble). */
  private cutBytes = 0;
  private broken = false;
  private made = 0;

  constructor(
    private readonly pathStem: string,
    private readonly maxBytes = SPOOL_BYTES,
  ) {}

  /** The seq the next chunk gets (so: how many chunks there were). */
  get nextSeq(): number {
    return this.next;
  }

  /** Stores a chunk; returns its seq. */
  append(stream: OutputStream, data: Buffer): number {
    const seq = this.next++;
    if (this.broken) {
      this.cutBytes += data.byteLength;
      return seq;
    }
    try {
      let seg = this.segments[this.segments.length - 1];
      if (!seg || seg.bytes >= this.maxBytes / 2) seg = this.rotate();
      writeSync(seg.fd, data, 0, data.byteLength, seg.bytes);
      seg.index.push({ seq, stream, offset: seg.bytes, length: data.byteLength });
      seg.bytes += data.byteLength;
    } catch {
      this.broken = true;
      this.cutBytes += data.byteLength;
    }
    return seq;
  }

  /**
   * The chunks from `fromSeq` on, in order. If some of them are no longer
   * kept, a marker chunk (numbered `fromSeq`) says so first.
   */
  read(fromSeq: number): SpooledChunk[] {
    const out: SpooledChunk[] = [];
    const first = this.segments[0]?.index[0]?.seq ?? this.next;
    if (fromSeq < first && fromSeq < this.next) {
      out.push({
        seq: fromSeq,
        stream: 'stderr',
        data: Buffer.from(
          `\n[octask: ${this.cutBytes} bytes of output were not kept while the dispatcher was away]\n`,
        ),
      });
    }
    for (const seg of this.segments) {
      for (const e of seg.index) {
        if (e.seq < fromSeq || (out.length > 0 && e.seq <= (out[out.length - 1]?.seq ?? -1)))
          continue;
        const data = Buffer.allocUnsafe(e.length);
        try {
          readSync(seg.fd, data, 0, e.length, e.offset);
        } catch {
          continue;
        }
        out.push({ seq: e.seq, stream: e.stream, data });
      }
    }
    return out;
  }

  /** Deletes the spool's files. */
  remove(): void {
    for (const seg of this.segments) this.drop(seg);
    this.segments = [];
  }

  private rotate(): Segment {
    if (this.segments.length >= 2) {
      const old = this.segments.shift() as Segment;
      this.cutBytes += old.bytes;
      this.drop(old);
    }
    const path = `${this.pathStem}.${this.made++}.out`;
    const seg: Segment = { path, fd: openSync(path, 'w+', 0o600), bytes: 0, index: [] };
    this.segments.push(seg);
    return seg;
  }

  private drop(seg: Segment): void {
    try {
      closeSync(seg.fd);
    } catch {
      // already closed
    }
    rmSync(seg.path, { force: true });
  }
}
