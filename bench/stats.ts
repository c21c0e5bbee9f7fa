/** Small helpers for the benchmark's figures. */

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export function mean(samples: readonly number[]): number {
  return samples.length === 0 ? NaN : samples.reduce((s, x) => s + x, 0) / samples.length;
}

/** A number with a fixed count of decimals, right-aligned to `width`. */
export function num(value: number, decimals: number, width = 0): string {
  return (Number.isFinite(value) ? value.toFixed(decimals) : 'n/a').padStart(width);
}

/** 1 MB = 2^20 bytes here, so 256 MB is exactly 268435456 bytes. */
export const MB = 1024 * 1024;
