import type { AgentInfo, AgentStatus, TaskInfo } from '../../shared/rpc';
import type { TaskStatus } from '../../shared/protocol';
import { compareVersions } from '../../shared/version';

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

/** How a row's icon is coloured; the view maps these to theme colours. */
export type RowTone = 'ok' | 'bad' | 'warn' | 'off' | 'plain';

export const AGENT_STATUS_TONE: Record<AgentStatus, RowTone> = {
  connecting: 'plain',
  online: 'ok',
  busy: 'ok',
  resting: 'warn',
  offline: 'off',
  wrong_key: 'bad',
  version_mismatch: 'bad',
};

/** Whether an agent runs an older Octask than this editor's: it works, and wants updating. */
export function agentIsOutdated(agent: AgentInfo, ours: string): boolean {
  return agent.version !== null && compareVersions(agent.version, ours) < 0;
}

/**
 * A Workers row: the name is the label; the description stays short enough
 * for the default side bar width (status, slots), and the tooltip holds the
 * rest, one fact a line. A new agent field is one line in `agentDetails`.
 */
export function agentDescription(agent: AgentInfo, ours?: string): string {
  const live = agent.status === 'online' || agent.status === 'busy';
  const parts = [
    live ? `${agent.running}/${agent.maxJobs} slots` : AGENT_STATUS_LABEL[agent.status],
  ];
  if (live && agent.queued > 0) parts.push(`${agent.queued} waiting`);
  if (agent.battery && !agent.battery.charging) parts.push(`${agent.battery.level}%`);
  if (ours !== undefined && agentIsOutdated(agent, ours)) parts.push(`older ${agent.version}`);
  return parts.join(' · ');
}

/** The tooltip's lines, plain text (the view may set them as Markdown). */
export function agentDetails(agent: AgentInfo, ours?: string): string[] {
  const lines = [
    `${agent.label || agent.name}: ${AGENT_STATUS_LABEL[agent.status]}`,
    `address ${agent.address} (${agent.source === 'mdns' ? 'found by mDNS' : 'listed'})`,
  ];
  if (agent.os) lines.push(`${agent.os}/${agent.arch ?? '?'}, ${agent.cpus ?? '?'} CPUs`);
  if (agent.memory) lines.push(`${formatBytes(agent.memory)} memory`);
  if (agent.version) {
    const older =
      ours !== undefined && agentIsOutdated(agent, ours)
        ? ` (older than this editor's ${ours}: copy the new octask-agent.js and restart it)`
        : '';
    lines.push(`octask-agent ${agent.version}, protocol ${agent.protocol ?? '?'}${older}`);
  }
  const waiting = agent.queued > 0 ? `, ${agent.queued} waiting` : '';
  lines.push(`slots: ${agent.running} of ${agent.maxJobs} in use${waiting}`);
  if (agent.loadAvg !== null) lines.push(`load ${agent.loadAvg.toFixed(2)}`);
  if (agent.freeMemory !== null) lines.push(`${formatBytes(agent.freeMemory)} memory free`);
  if (agent.battery) {
    const how = agent.battery.charging ? ', charging' : '';
    const rest = agent.resting ? ': resting, taking no new work' : '';
    lines.push(`battery ${agent.battery.level}%${how}${rest}`);
  }
  if (agent.tags.length > 0) lines.push(`tags: ${agent.tags.join(', ')}`);
  if (agent.lastError) lines.push(`${agent.lastError.code}: ${agent.lastError.message}`);
  return lines;
}

/** The status bar's words: named, so it reads beside other counters. */
export function statusBarText(online: number, running: number, queued: number): string {
  const parts = [`$(vm) Octask: ${online} agent${online === 1 ? '' : 's'}`];
  if (running > 0) parts.push(`$(sync~spin) ${running} running`);
  if (queued > 0) parts.push(`$(clock) ${queued} queued`);
  return parts.join(' · ');
}

/** A command as a row label: its first line, white space folded, at most `max` characters. */
export function shortCommand(command: string, max = 48): string {
  const line = (command.split('\n')[0] ?? '').replace(/\s+/g, ' ').trim();
  const more = line.length > max || command.trim().includes('\n');
  return more ? `${line.slice(0, max - 1).trimEnd()}…` : line;
}

/** A run's label: its task label when it has one, else its command, shortened. */
export function runLabel(command: string, label?: string): string {
  return label && label.trim() && label !== command ? label.trim() : shortCommand(command);
}

/** A run's status, from its tasks': running before queued, any failure before cancelled. */
export function runStatus(tasks: readonly TaskInfo[]): TaskStatus {
  const has = (s: TaskStatus): boolean => tasks.some((t) => t.status === s);
  if (has('running')) return 'running';
  if (has('pending')) return 'pending';
  for (const s of ['failed', 'timed_out', 'lost', 'cancelled'] as const) if (has(s)) return s;
  return 'completed';
}

/** Wall time of a run: from its first start to its last end (or now, while it runs). */
export function runDuration(tasks: readonly TaskInfo[], now = Date.now()): number | null {
  const starts = tasks.map((t) => t.startedAt).filter((v): v is number => v !== null);
  if (starts.length === 0) return null;
  const finished = tasks.every((t) => t.endedAt !== null);
  const end = finished ? Math.max(...tasks.map((t) => t.endedAt as number)) : now;
  return end - Math.min(...starts);
}

/** One line beside a run: where (or how many), how it went, how long. */
export function runDescription(tasks: readonly TaskInfo[], now = Date.now()): string {
  const first = tasks[0];
  if (tasks.length === 1 && first) return taskDescription(first, now);
  const parts: string[] = [
    first && first.shardCount > 1 ? `${tasks.length} shards` : `${tasks.length} agents`,
  ];
  const count = (pred: (t: TaskInfo) => boolean): number => tasks.filter(pred).length;
  const passed = count((t) => t.status === 'completed');
  const failed = count((t) => ['failed', 'timed_out', 'lost'].includes(t.status));
  const running = count((t) => t.status === 'running');
  const queued = count((t) => t.status === 'pending');
  const tally = [
    running ? `${running} running` : '',
    queued ? `${queued} queued` : '',
    passed ? `${passed} passed` : '',
    failed ? `${failed} failed` : '',
  ].filter(Boolean);
  if (tally.length) parts.push(tally.join(', '));
  const ms = runDuration(tasks, now);
  if (ms !== null) parts.push(formatDuration(ms));
  return parts.join(' · ');
}

/** Whether a finished task counts as failed for "Rerun Failed". */
export function taskFailed(task: TaskInfo): boolean {
  return task.status === 'failed' || task.status === 'timed_out' || task.status === 'lost';
}

/** The name of a task's output document, as its editor tab shows it. */
export function outputTitle(
  label: string,
  task: Pick<TaskInfo, 'shard' | 'shardCount' | 'agent'>,
): string {
  const base =
    label
      .replace(/[\\/:*?"<>|\n\r\t]+/g, ' ')
      .replace(/\s+/g, ' ')
      .trim() || 'output';
  const shard = task.shardCount > 1 && task.shard !== null ? ` #${task.shard}` : '';
  return `${base.slice(0, 60)}${shard}${task.agent ? ` (${task.agent})` : ''}.log`;
}

/**
 * A dispatcher log line with its internal task ids (`task ede7fec4-2`) put
 * as the user knows the task: `"unit tests" #2`, and sizes in KiB or MiB.
 * Ids not known stay.
 */
export function nameTasksIn(message: string, nameOf: (id: string) => string | undefined): string {
  return message
    .replace(/\b(\d+) bytes\b/g, (_w, n: string) => formatBytes(Number(n)))
    .replace(/\btask ([0-9a-f]{6,}(?:-\d+)?)\b/g, (whole, id: string) => {
      const name = nameOf(id);
      return name ? name : whole;
    });
}
