// Reads the document `octask run --json` prints on stdout:
// {"tasks":[{id,agent,status,exitCode,signal,durationMs,attempts,shard,error?}]}
// Checked field by field, so that a change in the CLI's output shows up as a
// clear message rather than as `undefined` in the demo's table.

export interface TaskResult {
  id: string;
  agent: string | null;
  status: string;
  exitCode: number | null;
  signal: string | null;
  durationMs: number | null;
  attempts: number;
  shard: number | null;
  error: { code: string; message: string } | null;
}

/** Parses the last non-empty line of `stdout`; throws with the reason when it is not the expected shape. */
export function parseRunJson(stdout: string): TaskResult[] {
  const line = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .pop();
  if (line === undefined) throw new Error('printed no JSON result on stdout');
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch (err) {
    throw new Error(`printed something that is not JSON on stdout (${(err as Error).message})`);
  }
  if (!isRecord(doc) || !Array.isArray(doc.tasks))
    throw new Error('printed JSON without a "tasks" array');
  return doc.tasks.map((t: unknown, i: number) => toTask(t, `tasks[${i}]`));
}

function toTask(value: unknown, where: string): TaskResult {
  if (!isRecord(value)) throw new Error(`${where} is not an object`);
  const field = <T>(name: string, ok: (v: unknown) => v is T, what: string): T => {
    const v = value[name];
    if (!ok(v)) throw new Error(`${where}.${name} should be ${what}, got ${JSON.stringify(v)}`);
    return v;
  };
  const error = value.error;
  if (
    error !== undefined &&
    error !== null &&
    !(isRecord(error) && typeof error.code === 'string' && typeof error.message === 'string')
  )
    throw new Error(`${where}.error should be {code, message}, got ${JSON.stringify(error)}`);
  return {
    id: field('id', isString, 'a string'),
    agent: field('agent', orNull(isString), 'a string or null'),
    status: field('status', isString, 'a string'),
    exitCode: field('exitCode', orNull(isNumber), 'a number or null'),
    signal: field('signal', orNull(isString), 'a string or null'),
    durationMs: field('durationMs', orNull(isNumber), 'a number or null'),
    attempts: field('attempts', isNumber, 'a number'),
    shard: field('shard', orNull(isNumber), 'a number or null'),
    error: isRecord(error) ? { code: String(error.code), message: String(error.message) } : null,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isString(v: unknown): v is string {
  return typeof v === 'string';
}

function isNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function orNull<T>(ok: (v: unknown) => v is T): (v: unknown) => v is T | null {
  return (v: unknown): v is T | null => v === null || ok(v);
}
