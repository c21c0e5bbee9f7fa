import type { AgentInfo, AgentStatus, TaskInfo } from '../../shared/rpc';
import type { TaskStatus } from '../../shared/protocol';

/** Words the views use for each agent status. */
export const AGENT_STATUS_LABEL: Record<AgentStatus, string> = {
  connecting: 'connecting',
  online: 'online',
  busy: 'busy',
  resting: 'resting',
  offline: 'offline',
  wrong_key: 'wrong key',
  version_mismatch: 'version mismatch',
};

/** Codicon names (https://code.visualstudio.com/api/references/icons-in-labels). */
export const AGENT_STATUS_ICON: Record<AgentStatus, string> = {
  connecting: 'loading~spin',
  online: 'vm-active',
  busy: 'vm-running',
  resting: 'debug-pause',
  offline: 'vm-outline',
  wrong_key: 'key',
  version_mismatch: 'versions',
};

export const TASK_STATUS_ICON: Record<TaskStatus, string> = {
  pending: 'clock',
  running: 'sync~spin',
  completed: 'pass',
  failed: 'error',
  timed_out: 'watch',
  cancelled: 'circle-slash',
  lost: 'debug-disconnect',
};

export function formatDuration(ms: number | null): string {
  if (ms === null) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m}m ${String(s).padStart(2, '0')}s`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** `pi#2` for a shard, `pi` otherwise; `queued` before placement. */
export function taskPlace(task: TaskInfo): string {
  const agent = task.agent ?? 'queued';
  return task.shardCount > 1 && task.shard !== null ? `${agent}#${task.shard}` : agent;
}

/** One line under a task's command: where, how long, how it ended. */
export function taskDescription(task: TaskInfo, now = Date.now()): string {
  const parts = [taskPlace(task)];
  const ms =
    task.durationMs ?? (task.status === 'running' && task.startedAt ? now - task.startedAt : null);
  if (ms !== null) parts.push(formatDuration(ms));
  if (task.status === 'failed' && task.exitCode !== null) parts.push(`exit ${task.exitCode}`);
  else if (task.status !== 'running' && task.status !== 'pending')
    parts.push(task.status.replace('_', ' '));
  if (task.error) parts.push(task.error.code);
  return parts.join(' · ');
}

/** One line under an agent's name: status, address, platform, slots. */
export function agentDescription(agent: AgentInfo): string {
  const parts = [AGENT_STATUS_LABEL[agent.status], agent.address];
  if (agent.os && agent.arch) parts.push(`${agent.os}/${agent.arch}`);
  if (agent.status === 'online' || agent.status === 'busy')
    parts.push(`${agent.running}/${agent.maxJobs} slots`);
  return parts.join(' · ');
}
