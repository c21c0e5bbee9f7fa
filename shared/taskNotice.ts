import type { TaskInfo } from './rpc';

/**
 * The line to tell a person when a task's state changes in a way they
 * would want to know while they watch it: it waits for a slot, its link
 * dropped, it was reattached, or it runs again elsewhere. Null for the
 * rest. The CLI and the editor's task terminal both print these, once per
 * change (not once a second).
 */
export function taskNotice(prev: TaskInfo | undefined, next: TaskInfo): string | null {
  const agent = next.agent ?? 'the agent';
  if (next.phase === 'waiting' && next.ahead !== null && prev?.ahead === null) {
    const line = next.ahead === 0 ? 'next in line' : `${next.ahead} ahead`;
    return `waiting for a free slot on ${agent} (${line})`;
  }
  if (next.phase === 'detached' && prev?.phase !== 'detached') return `reconnecting to ${agent}…`;
  if (prev?.phase === 'detached' && (next.phase === 'waiting' || next.phase === 'running'))
    return `reconnected to ${agent}; following the task again`;
  const placed = prev?.phase === 'queued' && (next.phase === 'syncing' || next.phase === 'waiting');
  if (placed && next.attempts > 1) {
    return `── ${next.retryReason ?? 'retrying'}; running again on ${agent} (attempt ${next.attempts})`;
  }
  return null;
}
