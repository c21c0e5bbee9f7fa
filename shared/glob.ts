/**
 * A small glob matcher for `--include` / `--exclude` over workspace-relative,
 * `/`-separated paths. Supported: `*` and `?` within one segment, `**` across
 * segments, `[abc]` / `[!abc]` classes, `{a,b}` alternatives (nestable), and
 * `\` to escape. As in .gitignore, a pattern without `/` matches a name at
 * any depth, a leading `/` anchors to the workspace root, and a pattern that
 * matches a folder matches everything under it.
 */

/** Expanding more alternatives than this is surely a mistake (or hostile). */
const MAX_ALTERNATIVES = 1024;

/** Split a pattern's `{a,b}` alternatives into plain patterns. */
export function expandBraces(pattern: string): string[] {
  const open = findUnescaped(pattern, '{', 0);
  if (open < 0) return [pattern];
  const close = findClosingBrace(pattern, open);
  if (close < 0) return [pattern];
  const head = pattern.slice(0, open);
  const tail = pattern.slice(close + 1);
  const out: string[] = [];
  for (const option of splitTopLevelCommas(pattern.slice(open + 1, close))) {
    for (const expanded of expandBraces(head + option + tail)) {
      out.push(expanded);
      if (out.length > MAX_ALTERNATIVES) {
        throw new Error(`glob ${JSON.stringify(pattern)} expands to too many alternatives`);
      }
    }
  }
  return out;
}

function findUnescaped(s: string, ch: string, from: number): number {
  for (let i = from; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === ch) return i;
  }
  return -1;
}

function findClosingBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') i++;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}

function splitTopLevelCommas(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') i++;
    else if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

/** A brace-free pattern, normalised: whether it is anchored, and its body. */
function normalise(pattern: string): { anchored: boolean; body: string } {
  let body = pattern;
  // A trailing "/" means "this folder" in .gitignore; here it means everything under it.
  while (body.endsWith('/') && body.length > 1) body = body.slice(0, -1);
  const anchored = body.startsWith('/') || body.slice(0, -1).includes('/');
  while (body.startsWith('/')) body = body.slice(1);
  return { anchored, body };
}

const REGEX_SPECIAL = /[.+^${}()|[\]\\*?]/;

function escapeChar(c: string): string {
  return REGEX_SPECIAL.test(c) ? `\\${c}` : c;
}

/** Translate `[...]` starting at `i`; returns the regex source and the index after it. */
function translateClass(body: string, i: number): { source: string; next: number } | null {
  let j = i + 1;
  let negate = false;
  if (body[j] === '!' || body[j] === '^') {
    negate = true;
    j++;
  }
  let inner = '';
  // A "]" right after "[" or "[!" is a member, as in shells.
  if (body[j] === ']') {
    inner += '\\]';
    j++;
  }
  for (; j < body.length && body[j] !== ']'; j++) {
    const c = body[j] ?? '';
    if (c === '/') return null;
    if (c === '\\' && j + 1 < body.length) inner += `\\${body[++j] ?? ''}`;
    else inner += c === '-' ? '-' : escapeChar(c);
  }
  if (j >= body.length) return null;
  return { source: `[${negate ? '^' : ''}${inner}${negate ? '/' : ''}]`, next: j + 1 };
}

function translateStars(body: string, i: number): { source: string; next: number } {
  let j = i;
  while (body[j] === '*') j++;
  const atSegmentStart = i === 0 || body[i - 1] === '/';
  const atSegmentEnd = j === body.length || body[j] === '/';
  if (j - i < 2 || !atSegmentStart || !atSegmentEnd) return { source: '[^/]*', next: j };
  // "**" alone in its segment: any number of whole segments, including none.
  if (j === body.length) return { source: '.*', next: j };
  return { source: '(?:[^/]*/)*', next: j + 1 };
}

function translate(body: string): string {
  let source = '';
  for (let i = 0; i < body.length;) {
    const c = body[i] ?? '';
    if (c === '*') {
      const t = translateStars(body, i);
      source += t.source;
      i = t.next;
    } else if (c === '?') {
      source += '[^/]';
      i++;
    } else if (c === '[') {
      const t = translateClass(body, i);
      source += t ? t.source : '\\[';
      i = t ? t.next : i + 1;
    } else if (c === '\\' && i + 1 < body.length) {
      source += escapeChar(body[i + 1] ?? '');
      i += 2;
    } else {
      source += escapeChar(c);
      i++;
    }
  }
  return source;
}

/**
 * The regex for one pattern. It matches a path equal to the pattern or lying
 * under a folder that is; unanchored patterns match at any depth.
 */
export function globToRegExp(pattern: string): RegExp {
  const alternatives = expandBraces(pattern).map((p) => {
    const { anchored, body } = normalise(p);
    return (anchored ? '' : '(?:[^/]+/)*') + translate(body);
  });
  return new RegExp(`^(?:${alternatives.join('|')})(?:/.*)?$`, 's');
}

/** A predicate true for paths matched by any of `patterns` (false when there are none). */
export function createMatcher(patterns: readonly string[]): (path: string) => boolean {
  if (patterns.length === 0) return () => false;
  const regexes = patterns.map(globToRegExp);
  return (path) => regexes.some((re) => re.test(path));
}

/**
 * Where every match of `pattern` lies, one per brace alternative: the
 * longest run of literal leading segments ('' for the whole workspace). It
 * may name a file or a folder, and lets an include walk only `dist` for
 * `dist/**`.
 */
export function globBases(pattern: string): string[] {
  return expandBraces(pattern).map((p) => {
    const { anchored, body } = normalise(p);
    if (!anchored) return '';
    const literal: string[] = [];
    for (const segment of body.split('/')) {
      if (/[*?[\\{]/.test(segment)) break;
      literal.push(segment);
    }
    return literal.join('/');
  });
}

/** Whether `path` matches any of `patterns` (compiled once per distinct list). */
export function matchesAnyGlob(patterns: readonly string[], path: string): boolean {
  if (patterns.length === 0) return false;
  const key = patterns.join('\0');
  let matcher = matcherCache.get(key);
  if (!matcher) {
    if (matcherCache.size > 256) matcherCache.clear();
    matcherCache.set(key, (matcher = createMatcher(patterns)));
  }
  return matcher(path);
}

const matcherCache = new Map<string, (path: string) => boolean>();
