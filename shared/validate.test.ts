import assert from 'node:assert/strict';
import { OctaskError } from './errors';
import { MAX_TIMEOUT_MS, timeoutSecProblem, validateMessage } from './validate';

function run(timeoutMs: number): unknown {
  return { t: 'run', task: 't1', command: 'true', env: {}, timeoutMs };
}

describe('validate: timeouts', () => {
  it('takes run.timeoutMs from 0 to 2^31-1', () => {
    assert.doesNotThrow(() => validateMessage(run(0)));
    assert.doesNotThrow(() => validateMessage(run(MAX_TIMEOUT_MS)));
    assert.equal(MAX_TIMEOUT_MS, 2147483647);
  });

  it('refuses a timeoutMs a timer cannot hold with E_BAD_FIELD, not a task ended at once', () => {
    for (const bad of [2 ** 31, 2147484 * 1000, Number.MAX_SAFE_INTEGER]) {
      assert.throws(
        () => validateMessage(run(bad)),
        (err: unknown) =>
          err instanceof OctaskError &&
          err.code === 'E_BAD_FIELD' &&
          /run\.timeoutMs must be 0 to 2147483647/.test(err.message),
      );
    }
  });

  it('says what is wrong with a timeout in seconds', () => {
    assert.equal(timeoutSecProblem(undefined), undefined);
    assert.equal(timeoutSecProblem(0), undefined);
    assert.equal(timeoutSecProblem(2147483), undefined);
    assert.match(timeoutSecProblem(2147484) ?? '', /0 to 2147483 seconds/);
    assert.match(timeoutSecProblem(-1) ?? '', /got -1/);
    assert.match(timeoutSecProblem('5') ?? '', /got "5"/);
  });
});

describe('validate: blobs', () => {
  const hash = (c: string): string => c.repeat(64);
  const blobs = (hashes: string[], sizes: number[], data: string): unknown => ({
    t: 'blobs',
    sync: 's',
    hashes,
    sizes,
    data: Buffer.from(data),
  });
  const bad = (value: unknown, text: RegExp): void =>
    assert.throws(
      () => validateMessage(value),
      (err: unknown) =>
        err instanceof OctaskError && err.code === 'E_BAD_FIELD' && text.test(err.message),
    );

  it('takes sizes that cut the data exactly, empty contents included', () => {
    assert.doesNotThrow(() =>
      validateMessage(blobs([hash('a'), hash('b'), hash('c')], [2, 0, 3], 'xxyyy')),
    );
  });

  it('refuses sizes that do not add up to the data, or do not match the hashes', () => {
    bad(blobs([hash('a'), hash('b')], [2, 2], 'xxy'), /add up to 4 bytes but data holds 3/);
    bad(blobs([hash('a'), hash('b')], [2, 1, 0], 'xxy'), /one size per hash/);
    bad(blobs([], [], ''), /at least one/);
    bad(blobs([hash('a')], [-1], ''), /blobs\.sizes must be uints/);
    bad(blobs(['nothex'], [0], ''), /blobs\.hashes must be hashes/);
  });
});
