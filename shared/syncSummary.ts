/**
 * The one-line account of a sync that the CLI and the task terminal both
 * print: what changed in the agent's copy, in the words of a checkout.
 */

/** The figures the line is made of (a subset of rpc.SyncInfo). */
export interface SyncFigures {
  filesSent: number;
  bytesSent: number;
  removed: number;
  kept: number;
}

/** `sent 3 (12.0 KiB), removed 1, kept 9,552 built files`; parts that are zero are left out. */
export function syncSummary(s: SyncFigures): string {
  const parts = [`sent ${count(s.filesSent)} (${formatBytes(s.bytesSent)})`];
  if (s.removed > 0) parts.push(`removed ${count(s.removed)}`);
  if (s.kept > 0) parts.push(`kept ${count(s.kept)} built ${s.kept === 1 ? 'file' : 'files'}`);
  return parts.join(', ');
}

/** Thousands separated by commas, whatever the machine's locale. */
export function count(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
