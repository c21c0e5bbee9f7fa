/**
 * One line on a terminal that is rewritten in place (`\r`, erase to end of
 * line), for work that takes more than a second. Nothing at all when the
 * stream is not a terminal, so piped output and logs stay clean.
 */
export class ProgressLine {
  private shown = false;

  constructor(
    private readonly stream: NodeJS.WriteStream | { isTTY?: boolean; write(s: string): boolean },
  ) {}

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  show(text: string): void {
    if (!this.enabled) return;
    const width = 'columns' in this.stream && this.stream.columns ? this.stream.columns - 1 : 100;
    this.stream.write(`\r\x1b[K${text.slice(0, Math.max(20, width))}`);
    this.shown = true;
  }

  /** Erases the line, before other text goes out or when the work is done. */
  clear(): void {
    if (!this.shown) return;
    this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}

/** Shows `text` while `work` runs, if it runs longer than a second (on a terminal only). */
export async function whileSlow<T>(
  stream: NodeJS.WriteStream,
  text: string,
  work: Promise<T>,
): Promise<T> {
  const line = new ProgressLine(stream);
  const timer = setTimeout(() => line.show(text), 1000);
  try {
    return await work;
  } finally {
    clearTimeout(timer);
    line.clear();
  }
}
