import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { ErrorCode, OctaskError } from '../shared/errors';

/**
 * Bytes free for this process on the file system that holds, or will hold,
 * `path` (its nearest existing folder is asked); undefined where statfs is
 * missing (Node < 18.15).
 */
export function freeBytes(path: string): number | undefined {
  const statfs = (fs as { statfsSync?: (path: string) => { bavail: number; bsize: number } })
    .statfsSync;
  if (!statfs) return undefined;
  for (let at = path; ; at = dirname(at)) {
    try {
      const st = statfs(at);
      return st.bavail * st.bsize;
    } catch {
      if (dirname(at) === at) return undefined;
    }
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** E_NO_SPACE with the figures a user needs to act: needed and free on disk. */
export function noSpace(needed: number | undefined, free: number | undefined): OctaskError {
  const needText =
    needed === undefined
      ? 'the workspace copy did not fit'
      : `needs ${mib(needed)} (${needed} bytes)`;
  const freeText = free === undefined ? 'free space unknown' : `${mib(free)} free on disk`;
  return new OctaskError(
    ErrorCode.NoSpace,
    `no space for the sync: ${needText}, ${freeText}; free disk space on the agent`,
  );
}

/** A write error as E_NO_SPACE when the disk (or quota) is full; others unchanged. */
export function asNoSpace(err: Error, needed: number | undefined, free: number | undefined): Error {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? noSpace(needed, free) : err;
}
