/**
 * The rows of a hash cache and their stored form. A one-shot CLI run loads
 * every row and looks up each once, so the stored form is made to load
 * fast: columns (paths under one common folder, NUL-separated; stamps as
 * float64 bytes; hashes as one hex string) that JSON.parse reads as four
 * strings, looked up in place rather than turned into an object per path.
 * Rows changed since loading live beside the columns.
 */

/** size, mtimeMs, ctimeMs, ino, hex sha256. */
export type Row = [size: number, mtimeMs: number, ctimeMs: number, ino: number, hash: string];

/** 2: columns under a common folder; 1 was an object keyed by path. */
const FORMAT_VERSION = 2;
const HASH_HEX = 64;
const STAMP_FIELDS = 4;

interface Stored {
  version: number;
  /** The folder every path lies under (ends with its separator, or is ''). */
  base: string;
  /** Paths relative to `base`, NUL-separated (NUL is the one character no path has). */
  paths: string;
  /** base64 of float64 size, mtimeMs, ctimeMs, ino per path. */
  stamps: string;
  /** Each path's lowercase hex sha256, concatenated. */
  hashes: string;
}

/** The longest folder prefix (up to and with a separator) that `a` and `b` share. */
function commonFolder(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const cut = Math.max(a.lastIndexOf('/', i - 1), a.lastIndexOf('\\', i - 1));
  return cut < 0 ? '' : a.slice(0, cut + 1);
}

function folderOf(path: string): string {
  return path.slice(0, Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
}

export class HashRows {
  private readonly index = new Map<string, number>();
  /** 1 while a loaded row holds (not replaced, removed or pruned). */
  private readonly live: Uint8Array;
  private readonly usedLoaded: Uint8Array;
  private liveLoaded: number;
  private readonly changed = new Map<string, Row>();
  private readonly usedChanged = new Set<string>();

  private constructor(
    private readonly base: string,
    private readonly paths: readonly string[],
    private readonly stamps: Float64Array,
    private readonly hashes: string,
  ) {
    paths.forEach((p, i) => this.index.set(p, i));
    this.live = new Uint8Array(paths.length).fill(1);
    this.usedLoaded = new Uint8Array(paths.length);
    this.liveLoaded = paths.length;
  }

  static empty(): HashRows {
    return new HashRows('', [], new Float64Array(0), '');
  }

  /** The rows stored in `text`; none if it is not a whole, current stored form. */
  static decode(text: string): HashRows {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return HashRows.empty();
    }
    if (typeof parsed !== 'object' || parsed === null) return HashRows.empty();
    const { version, base, paths, stamps, hashes } = parsed as Partial<
      Record<keyof Stored, unknown>
    >;
    if (version !== FORMAT_VERSION || typeof base !== 'string' || typeof paths !== 'string')
      return HashRows.empty();
    if (typeof stamps !== 'string' || typeof hashes !== 'string') return HashRows.empty();
    const list = paths === '' ? [] : paths.split('\0');
    const bytes = Buffer.from(stamps, 'base64');
    const n = list.length;
    if (bytes.length !== n * STAMP_FIELDS * 8 || hashes.length !== n * HASH_HEX)
      return HashRows.empty();
    // Buffer's hex decoding stops at the first bad digit; lowercase is what sha256 hex gives.
    if (Buffer.from(hashes, 'hex').length !== n * 32 || hashes !== hashes.toLowerCase())
      return HashRows.empty();
    // Copied out for alignment. Machine byte order: the file never leaves this machine. A
    // damaged stamp (NaN, say) matches no lstat, so it costs a re-read, never a wrong hash.
    const floats = new Float64Array(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
    );
    return new HashRows(base, list, floats, hashes);
  }

  get size(): number {
    return this.liveLoaded + this.changed.size;
  }

  private loadedIndex(path: string): number {
    if (!path.startsWith(this.base)) return -1;
    const i = this.index.get(path.slice(this.base.length));
    return i === undefined || this.live[i] === 0 ? -1 : i;
  }

  /** The row of `path`, if any; marks it used. */
  get(path: string): Row | undefined {
    const row = this.changed.get(path);
    if (row) {
      this.usedChanged.add(path);
      return row;
    }
    const i = this.loadedIndex(path);
    if (i < 0) return undefined;
    this.usedLoaded[i] = 1;
    const s = this.stamps;
    const at = i * STAMP_FIELDS;
    const hash = this.hashes.slice(i * HASH_HEX, (i + 1) * HASH_HEX);
    return [s[at] ?? 0, s[at + 1] ?? 0, s[at + 2] ?? 0, s[at + 3] ?? 0, hash];
  }

  set(path: string, row: Row): void {
    this.dropLoaded(path);
    this.changed.set(path, row);
    this.usedChanged.add(path);
  }

  /** Removes the row of `path`; true if there was one. */
  delete(path: string): boolean {
    return this.dropLoaded(path) || this.changed.delete(path);
  }

  private dropLoaded(path: string): boolean {
    const i = this.loadedIndex(path);
    if (i < 0) return false;
    this.live[i] = 0;
    this.liveLoaded--;
    return true;
  }

  /** Starts a new round: pruneUnused then keeps only rows used from now on. */
  resetUsage(): void {
    this.usedLoaded.fill(0);
    this.usedChanged.clear();
  }

  /** Removes rows not used this round; true if any went. */
  pruneUnused(): boolean {
    const before = this.size;
    for (let i = 0; i < this.paths.length; i++) {
      if (this.live[i] === 1 && this.usedLoaded[i] === 0) {
        this.live[i] = 0;
        this.liveLoaded--;
      }
    }
    for (const path of this.changed.keys())
      if (!this.usedChanged.has(path)) this.changed.delete(path);
    return this.size !== before;
  }

  encode(): string {
    let base: string | null = this.liveLoaded > 0 ? this.base : null;
    for (const path of this.changed.keys())
      base = base === null ? folderOf(path) : commonFolder(base, path);
    base ??= '';
    const prefix = this.base.slice(base.length); // the loaded paths' base is never shorter
    const paths: string[] = [];
    const hashes: string[] = [];
    const floats = new Float64Array(this.size * STAMP_FIELDS);
    let n = 0;
    const add = (path: string, stamp: ArrayLike<number>, hash: string): void => {
      paths.push(path);
      hashes.push(hash);
      for (let k = 0; k < STAMP_FIELDS; k++) floats[n * STAMP_FIELDS + k] = stamp[k] ?? 0;
      n++;
    };
    for (let i = 0; i < this.paths.length; i++) {
      if (this.live[i] === 0) continue;
      const at = i * STAMP_FIELDS;
      add(
        prefix + (this.paths[i] ?? ''),
        this.stamps.subarray(at, at + STAMP_FIELDS),
        this.hashes.slice(i * HASH_HEX, (i + 1) * HASH_HEX),
      );
    }
    for (const [path, [size, mtimeMs, ctimeMs, ino, hash]] of this.changed)
      add(path.slice(base.length), [size, mtimeMs, ctimeMs, ino], hash);
    const stored: Stored = {
      version: FORMAT_VERSION,
      base,
      paths: paths.join('\0'),
      stamps: Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength).toString('base64'),
      hashes: hashes.join(''),
    };
    return JSON.stringify(stored);
  }
}
