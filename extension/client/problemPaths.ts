import { posix } from 'node:path';

/**
 * Rewrites file paths that a task prints relative to its own `cwd` into
 * paths relative to the workspace folder, which is what VS Code's matchers
 * join them to: `$tsc` (`${cwd}`, the workspace folder for a custom task),
 * `$eslint-compact`, `$go` and the usual gcc matcher (`${workspaceFolder}`).
 * Only the path a line starts with is looked at, only when that file exists
 * locally under the cwd, so words like `error:` are never touched. Absolute
 * paths are left to PathRewriter, which maps the agent's copy to this folder.
 */
export class CwdPathMapper {
  /** The current line, held while its first word could still be a path. */
  private held = '';
  /** The last line was passed on before its end: the rest of it is not a line start. */
  private midLine = false;

  constructor(
    /** The task's folder relative to the workspace folder, with forward slashes. */
    private readonly cwd: string,
    /** Whether a workspace-relative path names a local file or folder. */
    private readonly exists: (workspaceRelative: string) => boolean,
  ) {}

  write(chunk: string): string {
    const text = this.held + chunk;
    this.held = '';
    let out = '';
    let from = 0;
    while (from < text.length) {
      const nl = text.indexOf('\n', from);
      const line = nl === -1 ? text.slice(from) : text.slice(from, nl + 1);
      from = nl === -1 ? text.length : nl + 1;
      if (this.midLine) out += line;
      else if (nl !== -1 || leadingPath(line) !== undefined || !MAY_GROW.test(line))
        out += this.mapLine(line);
      else if (line.length > HOLD_LIMIT) out += line;
      // Its first word has not ended yet: it may still grow into a path.
      else this.held = line;
      this.midLine = nl === -1 && this.held === '';
    }
    return out;
  }

  /** What is still held back, once the stream ended. */
  flush(): string {
    const rest = this.held;
    this.held = '';
    this.midLine = false;
    return rest ? this.mapLine(rest, true) : '';
  }

  /** One line (with or without its newline), its leading path mapped when it is one. */
  mapLine(line: string, ended = false): string {
    const found = leadingPath(line, ended);
    if (!found) return line;
    const mapped = this.map(found.path);
    return mapped === undefined ? line : line.slice(0, found.at) + mapped + line.slice(found.end);
  }

  private map(path: string): string | undefined {
    if (!looksRelative(path)) return undefined;
    const joined = posix.normalize(posix.join(this.cwd, path));
    if (joined === '..' || joined.startsWith('../') || !this.exists(joined)) return undefined;
    // `./x` stays `./x`-shaped: eslint-stylish's file line must start with `.` or `/`.
    return path.startsWith('./') ? `./${joined}` : joined;
  }
}

/** More than this on one line without a newline is passed on unmapped. */
const HOLD_LIMIT = 4096;
/*
 * Terminal colour codes (ESC [ … m) may wrap the path, as in `tsc --pretty`;
 * VS Code strips them before matching, so they must be stepped over here.
 */
/* eslint-disable no-control-regex */
/** A line start that is all "word so far": colour codes and path characters. */
const MAY_GROW = /^(?:\x1b\[[0-9;]*m)*[^\s(:\x1b]*$/;
const ANSI_AT_START = /^(?:\x1b\[[0-9;]*m)*/;
const PATH_THEN_DELIMITER = /^[^\s(:\x1b]+(?=[\s(:\x1b])/;
const PATH_THEN_DELIMITER_OR_END = /^[^\s(:\x1b]+(?=[\s(:\x1b]|$)/;
/* eslint-enable no-control-regex */

/** Where the path a line starts with lies: after colour codes, up to `(`, `:`, a space or a colour code. */
function leadingPath(
  line: string,
  ended = false,
): { at: number; end: number; path: string } | undefined {
  const at = ANSI_AT_START.exec(line)?.[0].length ?? 0;
  const rest = line.slice(at);
  const m = (ended ? PATH_THEN_DELIMITER_OR_END : PATH_THEN_DELIMITER).exec(rest);
  if (!m) return undefined;
  return { at, end: at + m[0].length, path: m[0] };
}

function looksRelative(path: string): boolean {
  if (path.startsWith('/') || path.startsWith('~') || /^[A-Za-z]:/.test(path)) return false;
  // A file name has an extension or a folder; bare words (`error`, `warning`) do not.
  return /\.[\w-]+$/.test(path) || path.includes('/');
}
