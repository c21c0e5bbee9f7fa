/**
 * Checks on workspace-relative paths as they travel in a sync manifest. Both
 * the dispatcher (before sending) and the agent (before writing) run them, so
 * a hostile or corrupt manifest can never name a file outside the workspace.
 *
 * Paths use `/` as the only separator on every platform; functions here are
 * pure and never touch the file system.
 */

export type TargetPlatform = 'linux' | 'darwin' | 'win32' | 'android';

/** Longest path accepted, in UTF-8 bytes (Linux PATH_MAX). */
export const MAX_PATH_BYTES = 4096;
/** Longest single name accepted, in UTF-8 bytes (NAME_MAX on common file systems). */
export const MAX_SEGMENT_BYTES = 255;

// C0 controls, DEL and C1 controls: legal on Linux, but never in a real
// workspace, and they make file names that can rewrite a terminal.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// A lone surrogate has no UTF-8 form, so the name would change on the way.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const DRIVE = /^[A-Za-z]:/;

function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function describeChar(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

function absoluteProblem(path: string): string | null {
  if (path.startsWith('/')) return 'is absolute (starts with "/")';
  if (path.startsWith('\\\\')) return 'is absolute (a UNC path starting with "\\\\")';
  if (DRIVE.test(path)) return 'is absolute (starts with a drive letter)';
  return null;
}

function characterProblem(path: string): string | null {
  const control = CONTROL.exec(path);
  if (control) return `contains the control character ${describeChar(control[0])}`;
  if (LONE_SURROGATE.test(path)) return 'contains a lone UTF-16 surrogate (not valid UTF-8)';
  if (path.includes('\\')) return 'contains a backslash (only "/" separates folders)';
  return null;
}

function segmentProblem(segment: string): string | null {
  if (segment === '') return 'has an empty segment ("//", or a leading or trailing "/")';
  if (segment === '.') return 'has a "." segment';
  if (segment === '..') return 'has a ".." segment';
  // Case-insensitive: on macOS and Windows ".GIT" is the same folder as ".git".
  if (segment.toLowerCase() === '.git') return 'has a ".git" segment (.git never travels)';
  if (utf8Bytes(segment) > MAX_SEGMENT_BYTES) {
    return `has a name longer than ${MAX_SEGMENT_BYTES} bytes`;
  }
  return null;
}

/**
 * Why `path` is not an acceptable workspace-relative path, or null if it is.
 * Accepted paths are relative, `/`-separated, with no empty, `.`, `..` or
 * `.git` segment, no backslash or control character, and within the length
 * limits — so joining one onto a workspace folder cannot leave it.
 */
export function checkRelativePath(path: string): string | null {
  if (path === '') return 'is empty';
  const problem = absoluteProblem(path) ?? characterProblem(path);
  if (problem) return problem;
  if (utf8Bytes(path) > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`;
  for (const segment of path.split('/')) {
    const bad = segmentProblem(segment);
    if (bad) return bad;
  }
  return null;
}

// Windows treats these as devices whatever the extension ("nul.txt" is NUL);
// the superscript digits are reserved too.
const WINDOWS_RESERVED = /^(con|prn|aux|nul|conin\$|conout\$|com[1-9¹²³]|lpt[1-9¹²³])$/i;
const WINDOWS_FORBIDDEN = /[<>:"|?*]/;

function windowsSegmentProblem(segment: string): string | null {
  const forbidden = WINDOWS_FORBIDDEN.exec(segment);
  if (forbidden) return `"${segment}" contains "${forbidden[0]}", not allowed on Windows`;
  // Windows silently strips a trailing dot or space, so "a." would become "a".
  if (/[. ]$/.test(segment)) return `"${segment}" ends with a dot or space, dropped on Windows`;
  const stem = (segment.split('.')[0] ?? '').trimEnd();
  if (WINDOWS_RESERVED.test(stem)) return `"${segment}" is a reserved device name on Windows`;
  return null;
}

/**
 * Why `path` (already accepted by checkRelativePath) cannot be created as-is
 * on `platform`, or null if it can. Only Windows has rules beyond the common
 * ones: Linux, Android and macOS accept any name checkRelativePath accepts.
 */
export function nameProblemsOn(platform: TargetPlatform, path: string): string | null {
  if (platform !== 'win32') return null;
  for (const segment of path.split('/')) {
    const problem = windowsSegmentProblem(segment);
    if (problem) return problem;
  }
  return null;
}

/**
 * The key two names share when a case-insensitive file system (macOS,
 * Windows) would store them as one. NFC too: macOS file systems also ignore
 * the difference between composed and decomposed accents.
 */
function foldName(name: string): string {
  return name.normalize('NFC').toLowerCase();
}

/**
 * Pairs of paths that would land on the same file or folder on a
 * case-insensitive file system, e.g. `["README", "readme"]`. Folders count
 * too: `Src/a` and `src/b` give `["Src", "src"]`, since one folder would hold
 * both, and nothing below that folder is reported again. Each clashing
 * spelling is paired with the first one seen; a pair is reported once.
 */
export function findCaseClashes(paths: readonly string[]): Array<[string, string]> {
  const firstSpelling = new Map<string, string>();
  const reported = new Set<string>();
  const clashes: Array<[string, string]> = [];
  for (const path of paths) {
    const segments = path.split('/');
    for (let i = 1; i <= segments.length; i++) {
      const prefix = segments.slice(0, i).join('/');
      const key = foldName(prefix);
      const first = firstSpelling.get(key);
      if (first === undefined) {
        firstSpelling.set(key, prefix);
        continue;
      }
      if (first === prefix) continue;
      if (!reported.has(prefix)) {
        reported.add(prefix);
        clashes.push([first, prefix]);
      }
      // Everything below a clashing folder clashes too; once is enough.
      break;
    }
  }
  return clashes;
}

/** Most symlinks a resolution may follow, as Linux allows (ELOOP beyond). */
const MAX_LINK_HOPS = 40;

function isAbsoluteTarget(target: string): boolean {
  return target.startsWith('/') || target.startsWith('\\') || DRIVE.test(target);
}

/**
 * Where the symlinks of a tree are: the target of the link at a
 * workspace-relative path, or undefined when that path is not a link. A Map
 * works; so does a function that also asks the file system.
 */
export type LinkLookup = ReadonlyMap<string, string> | ((path: string) => string | undefined);

/**
 * Whether a symlink at workspace-relative `linkPath` whose content is
 * `target` resolves to somewhere inside the workspace. Conservative: an
 * absolute target, a backslash (its meaning differs between platforms), a
 * resolution that steps above the workspace root even on the way (the
 * workspace's own folder name is unknown on the agent), one that reaches
 * `.git`, or a loop, all count as outside.
 *
 * `links` tells where the tree's other symlinks are; a resolution that runs
 * through one of them follows it as the OS would, so a chain such as
 * `a -> .`, `b -> a/..` is caught. The link itself may be among them.
 */
export function isInsideWorkspace(
  linkPath: string,
  target: string,
  links: LinkLookup = new Map(),
): boolean {
  return resolveLink(linkPath, target, links) !== null;
}

/**
 * The workspace-relative path a symlink at `linkPath` with content `target`
 * leads to ('' for the root), following `links` on the way; null when it
 * leads outside (see isInsideWorkspace).
 */
export function resolveLink(
  linkPath: string,
  target: string,
  links: LinkLookup = new Map(),
): string | null {
  const lookup = typeof links === 'function' ? links : (path: string) => links.get(path);
  const stack: string[] = [];
  let pending = [...linkPath.split('/').slice(0, -1), ...splitTarget(target)];
  let hops = 0;
  for (let segment = pending.shift(); segment !== undefined; segment = pending.shift()) {
    if (segment === null) return null;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (stack.pop() === undefined) return null;
      continue;
    }
    if (segment.toLowerCase() === '.git') return null;
    stack.push(segment);
    const next = lookup(stack.join('/'));
    if (next === undefined) continue;
    if (++hops > MAX_LINK_HOPS) return null;
    stack.pop();
    pending = [...splitTarget(next), ...pending];
  }
  return stack.join('/');
}

/** How many folders deep a workspace-relative path is ('' is 0, 'a' is 1). */
export function depthOf(path: string): number {
  return path === '' ? 0 : path.split('/').length;
}

/** The target's segments, or [null] when it can never be inside. */
function splitTarget(target: string): Array<string | null> {
  if (target === '' || isAbsoluteTarget(target) || target.includes('\\')) return [null];
  if (target.includes('\u0000')) return [null];
  return target.split('/');
}
