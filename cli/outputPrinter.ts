import type { Writable } from 'node:stream';

/**
 * Writes task output to the terminal. One task: bytes as they come. Several:
 * whole lines, each prefixed with its task's label, so interleaved output
 * stays readable. `write` returns false when a stream wants draining.
 */
export class OutputPrinter {
  private readonly partial = new Map<string, Buffer>();

  constructor(
    private readonly out: Writable,
    private readonly err: Writable,
    private readonly label: ((task: string) => string) | null,
  ) {}

  write(task: string, stream: 'stdout' | 'stderr', data: Uint8Array): boolean {
    const target = stream === 'stdout' ? this.out : this.err;
    if (!this.label) return target.write(data);
    const key = `${task}\0${stream}`;
    const prev = this.partial.get(key);
    const buf = prev
      ? Buffer.concat([prev, data])
      : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const end = buf.lastIndexOf(0x0a);
    if (end === -1) {
      this.partial.set(key, Buffer.from(buf));
      return true;
    }
    if (end + 1 < buf.length) this.partial.set(key, Buffer.from(buf.subarray(end + 1)));
    else this.partial.delete(key);
    return target.write(this.prefix(task, buf.subarray(0, end + 1)));
  }

  /** Writes what is left of a task's last line once it ended. */
  flush(task: string): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const key = `${task}\0${stream}`;
      const rest = this.partial.get(key);
      if (!rest) continue;
      this.partial.delete(key);
      (stream === 'stdout' ? this.out : this.err).write(
        this.prefix(task, Buffer.concat([rest, Buffer.from('\n')])),
      );
    }
  }

  private prefix(task: string, lines: Buffer): string {
    const tag = `[${this.label?.(task) ?? task}] `;
    const text = lines.toString('utf8');
    return (
      tag +
      text
        .slice(0, -1)
        .split('\n')
        .join('\n' + tag) +
      '\n'
    );
  }
}
