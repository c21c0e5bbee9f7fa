/** Octask's release version; a unit test keeps it equal to package.json's. */
export const OCTASK_VERSION = '0.2.0';

/**
 * Orders two dotted version numbers ("0.10.2" after "0.9"): negative when a
 * is older, 0 when equal, positive when newer. Missing parts count as 0; a
 * suffix after a part's digits ("1.2.0-rc1") is ignored, so a pre-release
 * equals its release.
 */
export function compareVersions(a: string, b: string): number {
  const pa = numericParts(a);
  const pb = numericParts(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

function numericParts(version: string): number[] {
  return version
    .trim()
    .replace(/^v/i, '')
    .split('.')
    .map((part) => Number(/^\d*/.exec(part)?.[0] || 0));
}
