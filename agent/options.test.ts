import assert from 'node:assert/strict';
import { defaultAgentName, parseAgentOptions } from './options';

describe('agent options', () => {
  const env = { HOME: '/home/u' } as NodeJS.ProcessEnv;

  it('has the documented defaults', () => {
    const o = parseAgentOptions([], env);
    assert.equal(o.bind, '0.0.0.0');
    assert.equal(o.port, 7879);
    assert.equal(o.keyFile, '/home/u/.config/octask/key');
    assert.equal(o.mdns, true);
    assert.equal(o.insecure, false);
    assert.equal(o.killGraceMs, 5000);
    assert.equal(o.cacheSize, undefined, 'no store to size unless an old setup asks');
    assert.equal(parseAgentOptions(['--cache-size', '500M'], env).cacheSize, 500 * 1024 ** 2);
    assert.throws(() => parseAgentOptions(['--cache-size', 'lots'], env), /--cache-size/);
    assert.ok(o.maxJobs >= 1);
  });

  it('takes flags, and OCTASK_* variables where a flag is absent', () => {
    const o = parseAgentOptions(
      ['--port', '9000', '--tags', 'arm, pi', '--allow', '^make', '--allow', '^npm'],
      {
        ...env,
        OCTASK_PORT: '1',
        OCTASK_NAME: 'desk',
        OCTASK_NO_MDNS: '1',
        OCTASK_DENY: 'rm\nshutdown',
        XDG_CONFIG_HOME: '/cfg',
      },
    );
    assert.equal(o.port, 9000);
    assert.equal(o.name, 'desk');
    assert.deepEqual(o.tags, ['arm', 'pi']);
    assert.equal(o.mdns, false);
    assert.deepEqual(o.allow, ['^make', '^npm']);
    assert.deepEqual(o.deny, ['rm', 'shutdown']);
    assert.equal(o.keyFile, '/cfg/octask/key');
  });

  it('rejects bad values with the flag named', () => {
    assert.throws(() => parseAgentOptions(['--port', '70000'], env), /--port/);
    assert.throws(() => parseAgentOptions(['--max-jobs', '0'], env), /--max-jobs/);
    assert.throws(() => parseAgentOptions(['--name', 'a b'], env), /--name/);
    assert.throws(() => parseAgentOptions(['--log-level', 'loud'], env), /--log-level/);
    assert.throws(() => parseAgentOptions(['--bogus'], env), /bogus/);
  });

  it('reduces a host name to a valid agent name', () => {
    assert.equal(defaultAgentName('my pi.local'), 'mypi');
    assert.equal(defaultAgentName('...'), 'agent');
  });
});
