import assert from 'node:assert/strict';
import { MIN_OPEN_MS, closeDelay } from './terminalTiming';

describe('closeDelay', () => {
  it('holds a terminal that ends at once open past VS Code’s 500 ms launch threshold', () => {
    assert.ok(MIN_OPEN_MS > 500);
    assert.equal(closeDelay(10_000, 10_000), MIN_OPEN_MS);
    assert.equal(closeDelay(10_000, 10_300), MIN_OPEN_MS - 300);
  });

  it('closes at once once the threshold is behind, or when the terminal never opened', () => {
    assert.equal(closeDelay(10_000, 10_000 + MIN_OPEN_MS), 0);
    assert.equal(closeDelay(10_000, 99_000), 0);
    assert.equal(closeDelay(0, 5), 0);
  });
});
