import { ErrorCode, OctaskError } from './errors';
import type { Message, MessageType } from './protocol';
import type { EntryColumns } from './manifestColumns';
import { fromColumns } from './manifestColumns';
import { PROTOCOL_VERSION } from './protocol';

type FieldKind =
  | 'string'
  | 'int'
  | 'uint'
  | 'bytes'
  | 'bool'
  | 'strings'
  | 'env'
  | 'intOrNull'
  | 'strOrNull'
  | 'hash'
  | 'optHash'
  | 'hashes'
  | 'uints'
  | 'columns'
  | 'entries'
  | 'optString'
  | 'optStrings'
  | 'optEntries'
  | 'optBool'
  | 'optUint'
  | 'optSetup'
  | 'load'
  | 'optLoad'
  | 'optHeld';

/** The shape of each message: field → kind. `t` is checked separately. */
const SCHEMAS: Record<MessageType, Record<string, FieldKind>> = {
  hello: {
    protocol: 'uint',
    role: 'string',
    id: 'string',
    name: 'string',
    version: 'string',
    os: 'string',
    arch: 'string',
    cpus: 'uint',
    memory: 'uint',
    maxJobs: 'uint',
    running: 'uint',
    tags: 'strings',
    graceMs: 'optUint',
    load: 'optLoad',
    tasks: 'optHeld',
  },
  attach: { task: 'string', fromSeq: 'uint' },
  release: { task: 'string' },
  queued: { task: 'string', ahead: 'uint' },
  load: { load: 'load' },
  gone: { task: 'string', reason: 'string' },
  run: {
    task: 'string',
    command: 'string',
    env: 'env',
    timeoutMs: 'uint',
    workspace: 'optString',
    cwd: 'optString',
    artifacts: 'optStrings',
    setup: 'optSetup',
  },
  cancel: { task: 'string' },
  started: { task: 'string', pid: 'uint', root: 'optString' },
  output: { task: 'string', seq: 'uint', stream: 'string', data: 'bytes' },
  exit: {
    task: 'string',
    outcome: 'string',
    exitCode: 'intOrNull',
    signal: 'strOrNull',
    durationMs: 'uint',
    running: 'uint',
    artifacts: 'optEntries',
  },
  refused: { task: 'string', code: 'string', message: 'string' },
  error: { code: 'string', message: 'string' },
  // On the wire a manifest travels as columns (shared/manifestColumns.ts);
  // validateMessage hands the receiver its entries.
  sync: {
    sync: 'string',
    workspace: 'string',
    columns: 'columns',
    preserve: 'strings',
    last: 'bool',
    clean: 'optBool',
    base: 'optHash',
    removed: 'optStrings',
    digest: 'optHash',
  },
  syncCheck: { sync: 'string', workspace: 'string', digest: 'optHash' },
  syncStale: { sync: 'string', base: 'optHash', stream: 'optBool' },
  syncNeed: { sync: 'string', hashes: 'hashes', busy: 'optUint' },
  blob: { sync: 'string', hash: 'hash', size: 'uint', offset: 'uint', data: 'bytes' },
  blobs: { sync: 'string', hashes: 'hashes', sizes: 'uints', data: 'bytes' },
  syncDone: {
    sync: 'string',
    written: 'uint',
    removed: 'uint',
    kept: 'optUint',
    waitedMs: 'optUint',
  },
  syncFailed: { sync: 'string', code: 'string', message: 'string' },
  fetch: { task: 'string', hashes: 'hashes' },
  fetchDone: { task: 'string', missing: 'hashes' },
};

/** The hello fields every protocol version has had, and will keep. */
const HELLO_ANY_VERSION: Record<string, FieldKind> = {
  protocol: 'uint',
  role: 'string',
  id: 'string',
  name: 'string',
  version: 'string',
};

const HASH = /^[0-9a-f]{64}$/;

function isEntry(v: unknown): boolean {
  if (!isPlainObject(v) || typeof v.path !== 'string') return false;
  if ('link' in v) return typeof v.link === 'string' && Object.keys(v).length === 2;
  return (
    Number.isSafeInteger(v.size) &&
    (v.size as number) >= 0 &&
    Number.isSafeInteger(v.mode) &&
    (v.mode as number) >= 0 &&
    typeof v.hash === 'string' &&
    HASH.test(v.hash)
  );
}

function isUint(v: unknown): boolean {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function isLoad(v: unknown): boolean {
  if (!isPlainObject(v)) return false;
  const counts = ['maxJobs', 'running', 'queued', 'yoursRunning', 'yoursQueued', 'freeMemory'];
  if (!counts.every((k) => isUint(v[k]))) return false;
  if (typeof v.loadAvg !== 'number' || !Number.isFinite(v.loadAvg) || v.loadAvg < 0) return false;
  if (typeof v.resting !== 'boolean' || typeof v.draining !== 'boolean') return false;
  const b = v.battery;
  if (b === null) return true;
  return (
    isPlainObject(b) &&
    isUint(b.level) &&
    (b.level as number) <= 100 &&
    typeof b.charging === 'boolean'
  );
}

const HELD_STATES = new Set(['queued', 'running', 'exited', 'lost']);
/** Most held tasks one hello may list. */
const MAX_HELD = 10_000;

function isHeld(v: unknown): boolean {
  return (
    Array.isArray(v) &&
    v.length <= MAX_HELD &&
    v.every(
      (h) =>
        isPlainObject(h) &&
        typeof h.task === 'string' &&
        h.task.length > 0 &&
        h.task.length <= MAX_ID_LENGTH &&
        typeof h.state === 'string' &&
        HELD_STATES.has(h.state) &&
        isUint(h.seq),
    )
  );
}

/** Closed sets of string values for the fields that have them. */
const ENUMS: Partial<Record<string, ReadonlySet<string>>> = {
  role: new Set(['agent', 'dispatcher']),
  stream: new Set(['stdout', 'stderr']),
  outcome: new Set(['completed', 'failed', 'timed_out', 'cancelled']),
};

/** Longest id or name we accept; keeps hostile frames from bloating logs and maps. */
const MAX_ID_LENGTH = 256;

/**
 * Longest task timeout, in ms: Node's timers take a signed 32-bit delay and
 * fire at once (with a warning) above it, which would end the task at start.
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The longest task timeout in whole seconds, as users give it. */
export const MAX_TIMEOUT_SEC = Math.floor(MAX_TIMEOUT_MS / 1000);

/** What is wrong with a task timeout given in seconds (0 or absent: none), or undefined. */
export function timeoutSecProblem(sec: unknown): string | undefined {
  if (sec === undefined) return undefined;
  if (typeof sec === 'number' && sec >= 0 && sec <= MAX_TIMEOUT_SEC) return undefined;
  return `a timeout must be 0 to ${MAX_TIMEOUT_SEC} seconds (about 24 days), got ${JSON.stringify(sec)}`;
}

/** Inclusive ranges for the numeric fields that have them. */
const RANGES: Partial<Record<string, readonly [number, number]>> = {
  timeoutMs: [0, MAX_TIMEOUT_MS],
};

function fits(kind: FieldKind, value: unknown): boolean {
  switch (kind) {
    case 'string':
      return typeof value === 'string';
    case 'int':
      return Number.isSafeInteger(value);
    case 'uint':
      return Number.isSafeInteger(value) && (value as number) >= 0;
    case 'bytes':
      return value instanceof Uint8Array;
    case 'bool':
      return typeof value === 'boolean';
    case 'hash':
      return typeof value === 'string' && HASH.test(value);
    case 'optHash':
      return value === undefined || (typeof value === 'string' && HASH.test(value));
    case 'hashes':
      return Array.isArray(value) && value.every((v) => typeof v === 'string' && HASH.test(v));
    case 'uints':
      return Array.isArray(value) && value.every(isUint);
    case 'columns':
      return (
        isPlainObject(value) &&
        typeof value.paths === 'string' &&
        value.hashes instanceof Uint8Array &&
        Array.isArray(value.sizes) &&
        Array.isArray(value.modes) &&
        Array.isArray(value.links)
      );
    case 'entries':
      return Array.isArray(value) && value.every(isEntry);
    case 'optString':
      return value === undefined || typeof value === 'string';
    case 'optStrings':
      return (
        value === undefined || (Array.isArray(value) && value.every((v) => typeof v === 'string'))
      );
    case 'optEntries':
      return value === undefined || (Array.isArray(value) && value.every(isEntry));
    case 'optBool':
      return value === undefined || typeof value === 'boolean';
    case 'optSetup':
      return (
        value === undefined ||
        (isPlainObject(value) &&
          Object.keys(value).length === 2 &&
          typeof value.command === 'string' &&
          value.command.trim() !== '' &&
          typeof value.key === 'string' &&
          HASH.test(value.key))
      );
    case 'strings':
      return Array.isArray(value) && value.every((v) => typeof v === 'string');
    case 'env':
      return isPlainObject(value) && Object.values(value).every((v) => typeof v === 'string');
    case 'optUint':
      return value === undefined || isUint(value);
    case 'load':
      return isLoad(value);
    case 'optLoad':
      return value === undefined || isLoad(value);
    case 'optHeld':
      return value === undefined || isHeld(value);
    case 'intOrNull':
      return value === null || Number.isSafeInteger(value);
    case 'strOrNull':
      return value === null || typeof value === 'string';
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Checks that a decoded value is a well-formed message. Throws an
 * OctaskError with E_UNKNOWN_TYPE or E_BAD_FIELD naming the culprit.
 */
export function validateMessage(value: unknown): Message {
  if (!isPlainObject(value)) {
    throw new OctaskError(ErrorCode.FrameMalformed, 'frame is not a msgpack map');
  }
  const type = value.t;
  if (typeof type !== 'string' || !Object.hasOwn(SCHEMAS, type)) {
    throw new OctaskError(
      ErrorCode.UnknownType,
      `unknown message type ${JSON.stringify(String(type)).slice(0, 64)}`,
    );
  }
  // A hello of another protocol version is passed on with only what every
  // version has, so the receiver can say which versions differ instead of
  // naming a field the other version lacks.
  const schema =
    type === 'hello' && isUint(value.protocol) && value.protocol !== PROTOCOL_VERSION
      ? HELLO_ANY_VERSION
      : SCHEMAS[type as MessageType];
  for (const [field, kind] of Object.entries(schema)) {
    const v = value[field];
    if (!fits(kind, v)) {
      throw new OctaskError(
        ErrorCode.BadField,
        `${type}.${field} must be ${kind}, got ${describe(v)}`,
      );
    }
    const allowed = ENUMS[field];
    if (allowed && typeof v === 'string' && !allowed.has(v)) {
      throw new OctaskError(
        ErrorCode.BadField,
        `${type}.${field} has unknown value ${JSON.stringify(v).slice(0, 64)}`,
      );
    }
    const range = RANGES[field];
    if (range && typeof v === 'number' && (v < range[0] || v > range[1])) {
      throw new OctaskError(
        ErrorCode.BadField,
        `${type}.${field} must be ${range[0]} to ${range[1]}, got ${v}`,
      );
    }
    if (
      (field === 'task' || field === 'id') &&
      typeof v === 'string' &&
      (v.length === 0 || v.length > MAX_ID_LENGTH)
    ) {
      throw new OctaskError(
        ErrorCode.BadField,
        `${type}.${field} must be 1 to ${MAX_ID_LENGTH} characters`,
      );
    }
  }
  if (type === 'blobs') checkBlobsLayout(value);
  if (type === 'sync') {
    const entries = fromColumns(value.columns as EntryColumns);
    if (!entries)
      throw new OctaskError(
        ErrorCode.BadField,
        'sync.columns do not make a manifest (lengths that disagree, or a size, mode or link that no entry has)',
      );
    value.entries = entries;
    delete value.columns;
  }
  return value as unknown as Message;
}

/** A `blobs` frame's sizes must cut its data into exactly its hashes' contents. */
function checkBlobsLayout(value: Record<string, unknown>): void {
  const hashes = value.hashes as string[];
  const sizes = value.sizes as number[];
  const data = value.data as Uint8Array;
  if (hashes.length === 0 || hashes.length !== sizes.length)
    throw new OctaskError(
      ErrorCode.BadField,
      `blobs needs one size per hash and at least one of each, got ${hashes.length} hashes and ${sizes.length} sizes`,
    );
  const total = sizes.reduce((n, s) => n + s, 0);
  if (total !== data.byteLength)
    throw new OctaskError(
      ErrorCode.BadField,
      `blobs.sizes add up to ${total} bytes but data holds ${data.byteLength}`,
    );
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}
