import assert from 'node:assert/strict';
import type { LogFields, Logger } from '../shared/logger';
import { DEFAULT_PRE_AUTH_LIMITS, PreAuthGuard } from './preAuthGuard';

function recorder(): { logger: Logger; lines: Array<{ msg: string; fields?: LogFields }> } {
  const lines: Array<{ msg: string; fields?: LogFields }> = [];
  const push = (msg: string, fields?: LogFields): void => void lines.push({ msg, fields });
  return { logger: { debug: push, info: push, warn: push, error: push }, lines };
}

describe('pre-authentication guard', () => {
  let clock: number;
  const now = (): number => clock;
  beforeEach(() => (clock = 1_000_000));

  it('turns 200 failed handshakes into a few lines, with one summary per window', () => {
    const { logger, lines } = recorder();
    const guard = new PreAuthGuard(
      { ...DEFAULT_PRE_AUTH_LIMITS, failuresBeforeBackoff: 1000 },
      logger,
      now,
    );
    for (let i = 0; i < 200; i++) guard.failed('198.51.100.9', i % 2 ? 'wrong_key' : 'timeout');
    assert.equal(lines.length, 1, 'the first failure is logged at once, the rest are counted');
    clock += 60_000;
    guard.flush();
    assert.equal(lines.length, 2);
    assert.equal(lines[1]?.msg, '200 failed handshakes from 198.51.100.9 in the last minute');
    assert.deepEqual(lines[1]?.fields, {
      peer: '198.51.100.9',
      failed: 200,
      refused: 0,
      timeout: 100,
      wrong_key: 100,
    });
    guard.flush();
    assert.equal(lines.length, 2, 'a quiet window says nothing');
    assert.equal(guard.tracked, 0, 'and the address is forgotten');
  });

  it('backs an address off after repeated failures, doubling, and lets others in', () => {
    const { logger, lines } = recorder();
    const guard = new PreAuthGuard(
      { ...DEFAULT_PRE_AUTH_LIMITS, failuresBeforeBackoff: 5, backoffMs: 1000 },
      logger,
      now,
    );
    for (let i = 0; i < 4; i++) guard.failed('198.51.100.9', 'wrong_key');
    assert.ok(guard.admit('198.51.100.9'));
    guard.failed('198.51.100.9', 'wrong_key');
    assert.equal(guard.admit('198.51.100.9'), false);
    assert.ok(guard.admit('198.51.100.10'), 'another address is not held back');
    assert.ok(lines.some((l) => l.msg === 'backing off 198.51.100.9 for 1 s'));
    clock += 1001;
    assert.ok(guard.admit('198.51.100.9'), 'the back-off ends');
    for (let i = 0; i < 5; i++) guard.failed('198.51.100.9', 'timeout');
    clock += 1500;
    assert.equal(guard.admit('198.51.100.9'), false, 'the second back-off lasts 2 s');
    clock += 600;
    assert.ok(guard.admit('198.51.100.9'));
    guard.flush();
    assert.match(
      lines.at(-1)?.msg ?? '',
      /^10 failed handshakes from 198\.51\.100\.9 in the last minute, 2 connections refused while backed off$/,
    );
  });

  it('remembers a bounded number of addresses', () => {
    const { logger } = recorder();
    const guard = new PreAuthGuard({ ...DEFAULT_PRE_AUTH_LIMITS, maxAddresses: 100 }, logger, now);
    for (let i = 0; i < 5000; i++) guard.failed(`2001:db8::${i.toString(16)}`, 'timeout');
    assert.equal(guard.tracked, 100);
  });
});
