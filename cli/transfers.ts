import type { Dispatcher } from '../extension/dispatcher/dispatcher';
import { count, formatBytes, syncSummary } from '../shared/syncSummary';
import { ProgressLine } from './progressLine';
import type { CliWorkspace } from './workspace';

/** A sync is shown as progress once it has run this long. */
const PROGRESS_AFTER_MS = 1000;

/** One agent's share of a run's transfers, as `--json` reports it. */
interface AgentTransfers {
  filesSent: number;
  bytesSent: number;
  removed: number;
  kept: number;
  waitedMs: number;
  syncMs: number;
  artifacts: { files: number; bytes: number };
}

/**
 * Tallies a run's syncs and artifacts (in all, and per agent, for --json),
 * and tells the user about each as it happens: one line per agent synced,
 * one per agent's artifacts, a warning per artifact glob that matched nothing.
 */
export function watchTransfers(
  dispatcher: Dispatcher,
  workspace: CliWorkspace | null,
  json: boolean,
  err: NodeJS.WriteStream = process.stderr,
) {
  const line = new ProgressLine(err);
  /** Agents being synced: when their sync started, and what it has sent. */
  const inFlight = new Map<string, { since: number; text: string }>();
  const drawProgress = (): void => {
    const now = performance.now();
    const parts = [...inFlight]
      .filter(([, p]) => now - p.since >= PROGRESS_AFTER_MS)
      .map(([name, p]) => `${name} ${p.text}`);
    if (parts.length > 0) line.show(`octask: sending ${parts.join(' · ')}`);
    else line.clear();
  };
  const offProgress = dispatcher.on('syncProgress', (p) => {
    if (workspace && p.workspace !== workspace.prepared.id) return;
    if (p.waitingForTasks) {
      line.clear();
      const n = p.waitingForTasks;
      err.write(
        `octask: ${p.agent}: waiting for ${n} running ${n === 1 ? 'task' : 'tasks'} of this workspace there before changing its copy\n`,
      );
    }
    const since = inFlight.get(p.agent)?.since ?? performance.now();
    inFlight.set(p.agent, {
      since,
      text: `${count(p.filesSent)}/${count(p.files)} files, ${formatBytes(p.bytesSent)}/${formatBytes(p.bytes)}`,
    });
    drawProgress();
  });
  const sync = {
    files: workspace?.prepared.entryCount ?? 0,
    filesSent: 0,
    bytesSent: 0,
    removed: 0,
    kept: 0,
    ms: workspace?.ms ?? 0,
  };
  const artifacts = { files: 0, bytes: 0 };
  const agents: Record<string, AgentTransfers> = {};
  const agent = (name: string): AgentTransfers =>
    (agents[name] ??= {
      filesSent: 0,
      bytesSent: 0,
      removed: 0,
      kept: 0,
      waitedMs: 0,
      syncMs: 0,
      artifacts: { files: 0, bytes: 0 },
    });
  const began = performance.now() - (workspace?.ms ?? 0);
  const offSync = dispatcher.on('sync', (s) => {
    if (workspace && s.workspace !== workspace.prepared.id) return;
    inFlight.delete(s.agent);
    line.clear();
    sync.filesSent += s.filesSent;
    sync.bytesSent += s.bytesSent;
    sync.removed += s.removed;
    sync.ms = Math.round(performance.now() - began);
    const a = agent(s.agent);
    a.filesSent += s.filesSent;
    a.bytesSent += s.bytesSent;
    a.removed += s.removed;
    a.kept = s.kept;
    a.waitedMs += s.waitedMs;
    a.syncMs += s.ms;
    if (s.error) err.write(`octask: sync to ${s.agent} failed: ${s.error.message}\n`);
    else if (!json) {
      const waited =
        s.waitedMs > 0
          ? `; waited ${(s.waitedMs / 1000).toFixed(1)} s for a task running in its copy`
          : '';
      err.write(
        `octask: ${s.agent}: ${syncSummary(s)}; ${count(s.files)} files, ${s.ms} ms${waited}\n`,
      );
    }
    drawProgress();
  });
  const offArtifacts = dispatcher.on('artifacts', (a) => {
    artifacts.files += a.files;
    artifacts.bytes += a.bytes;
    const mine = agent(a.agent).artifacts;
    mine.files += a.files;
    mine.bytes += a.bytes;
    // Warnings go out even with --json: a refused artifact is something to act on.
    for (const s of a.skipped)
      err.write(
        `octask: warning: artifact ${s.path} not brought back from ${a.agent}: ${s.reason}\n`,
      );
    for (const glob of a.unmatched)
      err.write(`octask: warning: ${a.agent}: --artifacts ${glob} matched no file\n`);
    if (!json && a.files > 0)
      err.write(
        `octask: ${a.agent}: brought back ${count(a.files)} ${a.files === 1 ? 'artifact' : 'artifacts'} (${formatBytes(a.bytes)})\n`,
      );
  });
  return {
    stop(): void {
      line.clear();
      offProgress();
      offSync();
      offArtifacts();
    },
    /** `sync` and `artifacts` are sums over the agents; `agents` has each one's share. */
    json: () => {
      if (!workspace) return {};
      // Shards on one agent sync it more than once: what it keeps is counted once.
      const kept = Object.values(agents).reduce((n, a) => n + a.kept, 0);
      return { sync: { ...sync, kept }, artifacts, agents };
    },
  };
}
