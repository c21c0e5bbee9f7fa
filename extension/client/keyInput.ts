/**
 * The cluster key in what a user pastes into Set Cluster Key: the bare 64 hex
 * digits, the `mkdir … echo <key> > …/key` line an agent prints on its first
 * start, or all of what `octask key` prints. One 64-digit run must stand
 * alone in it; the 16-digit key id beside it never counts.
 */
export function keyFromPastedText(
  text: string,
): { hex: string; error?: undefined } | { hex?: undefined; error: string } {
  const found = new Set(
    [...text.matchAll(/(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])/g)].map((m) =>
      m[0].toLowerCase(),
    ),
  );
  if (found.size === 1) return { hex: [...found][0] as string };
  if (found.size > 1) return { error: 'That holds more than one key: paste one' };
  return {
    error: text.trim()
      ? 'No key in that: paste the 64 hex digits, or the "mkdir … echo … > …/key" line an agent printed'
      : 'Paste the key, or the line an agent printed',
  };
}
