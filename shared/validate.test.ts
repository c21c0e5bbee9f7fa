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
