/*
 * The agent's own command-line parser. `util.parseArgs` appeared in Node
 * 18.3, and the agent supports every Node 18, so it cannot rely on it. This
 * takes the same shape of option table (the subset the agent uses) and
 * behaves the same way: `--name value`, `--name=value`, `-h`, `--` ends
 * flags, a repeated single flag keeps the last value, unknown flags throw.
 */

export interface FlagSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
}

export type FlagValues<T extends Record<string, FlagSpec>> = {
  [K in keyof T]?: T[K] extends { type: 'boolean' }
    ? T[K] extends { multiple: true }
      ? boolean[]
      : boolean
    : T[K] extends { multiple: true }
      ? string[]
      : string;
};

export interface ParsedFlags<T extends Record<string, FlagSpec>> {
  values: FlagValues<T>;
  positionals: string[];
}

/** A bad command line; `code` matches util.parseArgs's so callers treat both alike. */
export class FlagError extends Error {
  constructor(
    readonly code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' | 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
    message: string,
  ) {
    super(message);
    this.name = 'FlagError';
  }
}

export interface ParseConfig<T extends Record<string, FlagSpec>> {
  args: readonly string[];
  options: T;
  /** Accepted for parity with util.parseArgs: positionals are always returned, unknown flags always throw. */
  allowPositionals?: boolean;
  strict?: true;
}

/** util.parseArgs's contract for the agent's option table, on any Node. */
export function parseArgs<T extends Record<string, FlagSpec>>(
  config: ParseConfig<T>,
): ParsedFlags<T> {
  const { args, options } = config;
  const values: Record<string, string | boolean | Array<string | boolean>> = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(options)) if (spec.short) byShort.set(spec.short, name);

  const store = (name: string, spec: FlagSpec, value: string | boolean): void => {
    if (!spec.multiple) {
      values[name] = value;
      return;
    }
    const list = values[name];
    if (Array.isArray(list)) list.push(value);
    else values[name] = [value];
  };

  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const long = arg.startsWith('--');
    const eq = long ? arg.indexOf('=') : -1;
    const written = eq > 0 ? arg.slice(0, eq) : arg;
    const name = long ? written.slice(2) : byShort.get(written.slice(1));
    // Own keys only: `--constructor` is not a flag.
    const spec = name !== undefined && Object.hasOwn(options, name) ? options[name] : undefined;
    if (name === undefined || !spec || (!long && written.length !== 2)) {
      throw new FlagError('ERR_PARSE_ARGS_UNKNOWN_OPTION', `Unknown option '${written}'`);
    }
    if (spec.type === 'boolean') {
      if (eq > 0)
        throw new FlagError(
          'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
          `Option '${written}' does not take a value`,
        );
      store(name, spec, true);
      continue;
    }
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      value = args[i + 1];
      // Like parseArgs: `--name --other` is a missing value, not a value "--other".
      if (value === undefined || value.startsWith('-'))
        throw new FlagError(
          'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
          `Option '${written}' needs a value (for one that starts with -, write ${written}=VALUE)`,
        );
      i++;
    }
    store(name, spec, value);
  }
  return { values: values as FlagValues<T>, positionals };
}
