import type { AgentInfo, TaskSpec } from '../../shared/rpc';

/**
 * Which agents a first sync of `spec`'s workspace streams to while it is
 * hashed: those the task will surely sync to (every agent for `all` or
 * shards, the named one), or, for one task on any agent, the first online
 * (placement prefers an agent that has or is getting the workspace).
 * Called with each agent as it is offered; stateful for the last case.
 */
export function streamTargets(spec: TaskSpec): (agent: AgentInfo) => boolean {
  const target = spec.target ?? { kind: 'any' };
  if (target.kind === 'all' || (spec.shards ?? 1) > 1) return () => true;
  if (target.kind === 'agent') return (a) => a.name === target.name || a.address === target.name;
  let chosen: string | undefined;
  return (a) => {
    chosen ??= a.id;
    return chosen === a.id;
  };
}
