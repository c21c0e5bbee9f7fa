import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../shared/logger';

/** One line per task the agent was asked to run, whatever became of it. */
export interface AuditEntry {
  peer: string;
  dispatcher: string;
  task: string;
  command: string;
  outcome: string;
  exitCode?: number | null;
  signal?: string | null;
  durationMs?: number;
  reason?: string;
}

export type AuditLog = (entry: AuditEntry) => void;

/** Appends JSON lines to `path` (and to the log at debug level). */
export function createAuditLog(
  path: string | undefined,
  logger: Logger,
): { write: AuditLog; close(): Promise<void> } {
  const stream = path ? openAppend(path) : undefined;
  stream?.on('error', (err) => logger.error('audit log write failed', { path, err }));
  return {
    write(entry) {
      const record = { time: new Date().toISOString(), ...entry };
      // The file is the record; the log repeats it only when asked for detail.
      logger.debug('task audit', record);
      stream?.write(JSON.stringify(record) + '\n');
    },
    close: () => new Promise((resolve) => (stream ? stream.end(resolve) : resolve())),
  };
}

function openAppend(path: string) {
  mkdirSync(dirname(path), { recursive: true });
  return createWriteStream(path, { flags: 'a', mode: 0o600 });
}
