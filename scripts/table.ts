/** Plain-text table: a header, a rule of dashes, then the rows; columns padded to fit. */
export function formatTable(
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  options: { rightAligned?: ReadonlySet<number> } = {},
): string {
  const widths = header.map((h, col) =>
    Math.max(h.length, ...rows.map((row) => (row[col] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    widths
      .map((w, col) => {
        const cell = cells[col] ?? '';
        return options.rightAligned?.has(col) ? cell.padStart(w) : cell.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
