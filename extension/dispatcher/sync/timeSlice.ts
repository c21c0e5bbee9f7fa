/**
 * Lets a long synchronous loop (stat'ing and hashing thousands of files)
 * give the event loop a turn every few milliseconds, so a long-lived
 * dispatcher keeps answering its editor and agents while it prepares a
 * workspace. Synchronous fs calls in a tight loop are several times faster
 * than a promise per file; yielding every ~10 ms keeps that gain.
 */
export class TimeSlice {
  private sliceStarted = performance.now();
  /** Turns given to the event loop so far. */
  yields = 0;

  constructor(private readonly sliceMs = 10) {}

  /** True when the current slice is used up: the caller should `await yieldNow()`. */
  get due(): boolean {
    return performance.now() - this.sliceStarted >= this.sliceMs;
  }

  /** One turn of the event loop (I/O callbacks included), then a fresh slice. */
  async yieldNow(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.yields++;
    this.sliceStarted = performance.now();
  }
}
