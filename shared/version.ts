/** Octask's release version; a unit test keeps it equal to package.json's. */
export const OCTASK_VERSION = '0.1.0';

/**
 * Orders two dotted versions by their numbers (`0.10.0` after `0.9.1`);
 * a missing part counts as 0 and a pre-release or build tail is ignored.
 * Negative when a is older, positive when newer, 0 when the same.
 */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string): number[] =>
    (v.trim().replace(/^v/, '').split(/[-+]/)[0] ?? '')
      .split('.')
      .map((p) => Number.parseInt(p, 10) || 0);
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}
