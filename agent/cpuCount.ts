import * as os from 'node:os';

/** Where the CPU count comes from; injected in tests. */
export interface CpuSource {
  cpus(): readonly unknown[];
  /** Missing before Node 18.14. */
  availableParallelism?: () => number;
}

export interface CpuCount {
  /** CPUs the agent reports to dispatchers (hello, mDNS). */
  cpus: number;
  /** Default for --max-jobs: what this process may run in parallel. */
  parallelism: number;
  /** Set when the system listed no CPUs and a fallback was used: says which. */
  fallback?: string;
}

const nodeCpus: CpuSource = {
  cpus: () => os.cpus(),
  // Read at call time: a bundle built for Node 18 runs on 18.0, where this is absent.
  availableParallelism:
    typeof (os as Partial<typeof os>).availableParallelism === 'function'
      ? () => os.availableParallelism()
      : undefined,
};

/**
 * The one place that counts CPUs. Some Android builds list none in
 * `os.cpus()`; a count of 0 would make the default --max-jobs 0 and every
 * task wait forever, so the count never goes below 1.
 */
export function countCpus(source: CpuSource = nodeCpus): CpuCount {
  const listed = source.cpus().length;
  const available = source.availableParallelism?.() ?? 0;
  const parallelism = available >= 1 ? available : Math.max(listed, 1);
  if (listed >= 1) return { cpus: listed, parallelism };
  return {
    cpus: parallelism,
    parallelism,
    fallback:
      available >= 1
        ? `os.cpus() lists no CPUs; counting ${available} from os.availableParallelism()`
        : 'os.cpus() lists no CPUs; counting 1 (set --max-jobs to run more tasks at once)',
  };
}
