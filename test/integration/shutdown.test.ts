import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { newKeyFile, runCli, runOn, startAgent, tempDir } from '../helpers/agentProcess';
import { marker, waitUntilGone, waitUntilRunning } from '../helpers/processes';

describe('agent shutdown in stages, and the key command @integration', function () {
  this.timeout(60_000);
  const dir = tempDir();
  after(() => dir.cleanup());

  it('first signal drains: the running task finishes, then the agent exits 0', async () => {
    const { path: keyFile } = newKeyFile(dir.path, 'k1');
    const agent = await startAgent({ keyFile, name: 'drainer' });
    try {
      const n = marker();
      const run = runOn(agent.address, keyFile, ['--', `sleep 1.${n}; echo drained`]);
      assert.ok((await waitUntilRunning(`^sleep 1\\.${n}`)).length > 0, 'the task never started');
      agent.proc.kill('SIGTERM');
      const r = await run;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'drained\n');
      assert.equal(await agent.exited, 0);
      assert.ok(agent.logs.some((l) => String(l.msg).startsWith('SIGTERM: draining')));
    } finally {
      await agent.stop();
    }
  });

  it('second signal cancels running tasks, leaving no process', async () => {
    const { path: keyFile } = newKeyFile(dir.path, 'k2');
    const agent = await startAgent({ keyFile, name: 'canceller' });
    try {
      const n = marker();
      const run = runOn(agent.address, keyFile, ['--json', '--', `sleep ${n}`]);
      assert.ok((await waitUntilRunning(`^sleep ${n}`)).length > 0, 'the task never started');
      agent.proc.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      agent.proc.kill('SIGTERM');
      assert.equal(await agent.exited, 0);
      assert.deepEqual(await waitUntilGone(`^sleep ${n}`), []);
      const r = await run;
      const t = (JSON.parse(r.stdout) as { tasks: Array<{ status: string }> }).tasks[0];
      assert.equal(t?.status, 'cancelled');
    } finally {
      await agent.stop();
    }
  });

  it('creates a key on first start with mode 0600 and prints how to share it', async () => {
    const keyFile = join(dir.path, 'fresh', 'key');
    const agent = await startAgent({ keyFile, name: 'fresh' });
    await agent.stop();
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const shown = await runCli(['key', '--key-file', keyFile]);
    assert.equal(shown.code, 0);
    assert.ok(
      shown.stdout.includes(readFileSync(keyFile, 'utf8').trim()),
      'the paste line carries the key',
    );
    assert.match(shown.stdout, /key id: [0-9a-f]{16}/);
    const again = await runCli(['key', '--new', '--key-file', keyFile]);
    assert.equal(again.code, 125);
    assert.match(again.stderr, /already exists; add --force/);
    const forced = await runCli(['key', '--new', '--force', '--key-file', keyFile]);
    assert.equal(forced.code, 0);
  });

  it('answers usage mistakes with status 2 and a hint', async () => {
    const r = await runCli(['run', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bogus/);
    const none = await runCli(['run', '--no-mdns']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no command given/);
  });
});
