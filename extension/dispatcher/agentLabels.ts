/**
 * Names people can tell apart: agents are distinct by id, not by name, so
 * two phones both called `phone` are both used. The first (by id, so the
 * same agent keeps its label) is `phone`, the next `phone (2)`, and so on.
 * Links that reach the same agent (listed and found by mDNS) share a label.
 */
export function labelAgents(
  links: ReadonlyArray<{ key: string; name: string; id: string | undefined }>,
): Map<string, string> {
  const byName = new Map<string, string[]>();
  for (const l of links) {
    const ids = byName.get(l.name) ?? [];
    const id = l.id ?? l.key;
    if (!ids.includes(id)) ids.push(id);
    byName.set(l.name, ids);
  }
  const labels = new Map<string, string>();
  for (const l of links) {
    const ids = [...(byName.get(l.name) ?? [])].sort();
    const at = ids.indexOf(l.id ?? l.key);
    labels.set(l.key, at <= 0 ? l.name : `${l.name} (${at + 1})`);
  }
  return labels;
}
