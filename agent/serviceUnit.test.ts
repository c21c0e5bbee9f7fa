import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serviceCommand, serviceUnit, systemdQuote, userUnitPath } from './serviceUnit';

describe('systemd service unit', () => {
  it('drains on stop, restarts on failure and can be enabled', () => {
    const unit = serviceUnit(['/usr/bin/node', '/home/pi/octask-agent.js', '--name', 'pi']);
    const lines = unit.split('\n');
    assert.ok(lines.includes('ExecStart=/usr/bin/node /home/pi/octask-agent.js --name pi'));
    assert.ok(lines.includes('KillMode=mixed'), 'only the agent gets SIGTERM, so it drains');
    assert.ok(lines.includes('Restart=on-failure'));
    const install = lines.indexOf('[Install]');
    assert.ok(install > lines.indexOf('[Service]'), 'an [Install] section after [Service]');
    assert.equal(lines[install + 1], 'WantedBy=default.target');
  });

  it('quotes ExecStart words the way systemd splits them', () => {
    assert.equal(systemdQuote('/usr/bin/node'), '/usr/bin/node');
    assert.equal(systemdQuote('my dir/a.js'), '"my dir/a.js"');
    assert.equal(systemdQuote('say "hi"'), '"say \\"hi\\""');
    assert.equal(systemdQuote('50%'), '50%%');
    assert.equal(systemdQuote('$HOME'), '"$$HOME"');
  });

  it('install --user writes the unit under XDG_CONFIG_HOME and prints the two commands', () => {
    const home = mkdtempSync(join(tmpdir(), 'octask-unit-'));
    try {
      const env = { HOME: home } as NodeJS.ProcessEnv;
      let printed = '';
      const code = serviceCommand(
        ['install', '--user', '--name', 'pi'],
        (t) => (printed += t),
        env,
      );
      assert.equal(code, 0);
      const path = join(home, '.config', 'systemd', 'user', 'octask-agent.service');
      assert.equal(userUnitPath(env), path);
      const unit = readFileSync(path, 'utf8');
      assert.match(unit, /^ExecStart=\S+ .* --name pi$/m);
      assert.ok(printed.includes(`Wrote ${path}`));
      assert.ok(
        printed.includes(
          'systemctl --user daemon-reload && systemctl --user enable --now octask-agent',
        ),
      );
      assert.ok(printed.includes('loginctl enable-linger $USER'));
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('refuses a system install and bad agent options before writing anything', () => {
    const env = { HOME: '/nonexistent' } as NodeJS.ProcessEnv;
    assert.throws(() => serviceCommand(['install'], () => {}, env), /needs --user/);
    assert.throws(() => serviceCommand(['print', '--port', 'x'], () => {}, env), /--port/);
    assert.throws(() => serviceCommand(['start'], () => {}, env), /print or install/);
  });
});
