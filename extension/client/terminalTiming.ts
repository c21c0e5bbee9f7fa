/**
 * VS Code counts a terminal that exits within 500 ms of its launch as one
 * that "failed to launch" (its ErrorLaunchThresholdDuration) and says so
 * instead of "terminated with exit code"; a task that fails fast is held
 * open until a little after that.
 */
export const MIN_OPEN_MS = 700;

/** How long to wait before closing a terminal opened at `openedAt` (0 when never opened). */
export function closeDelay(openedAt: number, now: number): number {
  if (openedAt === 0) return 0;
  return Math.max(0, MIN_OPEN_MS - (now - openedAt));
}
