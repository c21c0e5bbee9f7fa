import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | null | undefined;

/**
 * Runs a full garbage collection, if this Node lets us. V8 collects only
 * when JavaScript allocates, so after a flood of connections an idle agent
 * would keep its grown heap (tens of MiB) for good; one collection once the
 * flood is over gives it back. Exposing `gc` at run time is what Node's own
 * docs show for `setFlagsFromString`; where it fails, memory is just kept.
 */
export function releaseMemory(): boolean {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as unknown;
      collect = typeof gc === 'function' ? (gc as () => void) : null;
    } catch {
      collect = null;
    }
  }
  if (!collect) return false;
  collect();
  return true;
}
