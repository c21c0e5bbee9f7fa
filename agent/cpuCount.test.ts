import assert from 'node:assert/strict';
import { countCpus } from './cpuCount';
import { parseAgentOptions } from './options';

const env = { HOME: '/home/u' } as NodeJS.ProcessEnv;
const four = [{}, {}, {}, {}];

describe('CPU count', () => {
  it('uses os.cpus() and availableParallelism when both answer', () => {
    assert.deepEqual(countCpus({ cpus: () => four, availableParallelism: () => 2 }), {
      cpus: 4,
      parallelism: 2,
    });
    assert.deepEqual(countCpus({ cpus: () => four }), { cpus: 4, parallelism: 4 });
  });

  it('falls back to availableParallelism when os.cpus() is empty, and says so', () => {
    const c = countCpus({ cpus: () => [], availableParallelism: () => 8 });
    assert.equal(c.cpus, 8);
    assert.equal(c.parallelism, 8);
    assert.match(c.fallback ?? '', /os.cpus\(\) lists no CPUs; counting 8/);
  });

  it('falls back to 1 when os.cpus() is empty and availableParallelism is missing (Node < 18.14)', () => {
    const c = countCpus({ cpus: () => [] });
    assert.equal(c.cpus, 1);
    assert.equal(c.parallelism, 1);
    assert.match(c.fallback ?? '', /counting 1/);
    // Nor does an availableParallelism that answers 0 make it 0.
    assert.equal(countCpus({ cpus: () => [], availableParallelism: () => 0 }).parallelism, 1);
  });

  it('gives --max-jobs a default of at least 1', () => {
    assert.equal(parseAgentOptions([], env, { cpus: () => [] }).maxJobs, 1);
    assert.equal(
      parseAgentOptions([], env, { cpus: () => [], availableParallelism: () => 3 }).maxJobs,
      3,
    );
    assert.equal(parseAgentOptions(['--max-jobs', '5'], env, { cpus: () => [] }).maxJobs, 5);
  });
});
