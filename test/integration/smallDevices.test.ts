import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CliResult } from '../helpers/agentProcess';
import {
  AGENT_BIN,
  cleanOctaskEnv,
  newKeyFile,
  runCli,
  runOn,
  startAgent,
  tempDir,
} from '../helpers/agentProcess';
import { nodeRelease } from '../helpers/nodeRelease';
import { marker, waitUntilGone, waitUntilRunning } from '../helpers/processes';
import type { AgentInfo } from '../../shared/rpc';

/*
 * What a Raspberry Pi or a phone does to the agent: old Nodes, an ssh
 * session that goes away, a second start on a taken port, SIGHUP, systemd,
 * a system that lists no CPUs.
 */

/** The oldest Node the agent supports, and one it does not. */
const OLDEST_NODE = '18.0.0';
const TOO_OLD_NODE = '12.22.12';

function describeRun(r: CliResult): string {
  return `exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

/** Runs the agent file to completion with `node` (or another); returns what it printed. */
function runAgentFile(
  args: string[],
  options: { node?: string; nodeArgs?: string[]; env?: NodeJS.ProcessEnv } = {},
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(
    options.node ?? process.execPath,
    [...(options.nodeArgs ?? []), AGENT_BIN, ...args],
    {
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, ...cleanOctaskEnv(), ...options.env },
    },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('small devices: Node versions, broken pipes, ports, signals, systemd @integration', function () {
  this.timeout(120_000);
  const dir = tempDir('octask-small-');
  after(() => dir.cleanup());
  const runArgs = (keyFile: string, address: string, command: string): string[] => [
    'run',
    '--agent',
    address,
    '--key-file',
    keyFile,
    '--no-mdns',
    '--',
    command,
  ];

  describe('Node versions', () => {
    it(`prints one line and nothing else on a Node older than 18 (faked: 16.20.2)`, () => {
      const fake = join(dir.path, 'fake-node-16.js');
      writeFileSync(
        fake,
        "Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '16.20.2' } });\n",
      );
      const r = runAgentFile(['--version'], { nodeArgs: ['-r', fake] });
      assert.equal(r.stderr, 'Octask needs Node 18 or later; this is 16.20.2\n');
      assert.equal(r.stdout, '');
      assert.equal(r.status, 1);
    });

    it(`prints the same line on a real Node ${TOO_OLD_NODE}, which cannot parse the program itself`, () => {
      const r = runAgentFile(['--version'], { node: nodeRelease(TOO_OLD_NODE) });
      assert.equal(r.stderr, `Octask needs Node 18 or later; this is ${TOO_OLD_NODE}\n`);
      assert.equal(r.stdout, '');
      assert.equal(r.status, 1);
    });

    it(`runs on Node ${OLDEST_NODE} (no util.parseArgs, no availableParallelism): --version, --help, a task, a synced run with an artifact, a timeout`, async () => {
      const node = nodeRelease(OLDEST_NODE);
      assert.equal(
        execFileSync(node, ['--version'], { encoding: 'utf8' }).trim(),
        `v${OLDEST_NODE}`,
      );
      const version = runAgentFile(['--version'], { node });
      assert.equal(version.status, 0, version.stderr);
      assert.match(version.stdout, /^octask-agent \d+\.\d+\.\d+ \(protocol \d+\)\n$/);
      const help = runAgentFile(['--help'], { node });
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, /^Usage: octask-agent/);

      const { path: keyFile } = newKeyFile(dir.path, 'k-node18');
      const agent = await startAgent({ keyFile, name: 'node18', execPath: node });
      try {
        const r = await runCli(
          runArgs(keyFile, agent.address, 'echo "on $OCTASK_AGENT_NAME"; exit 3'),
        );
        assert.equal(r.code, 3, describeRun(r));
        assert.match(r.stdout, /^on /);
        // A synced workspace and an artifact brought back, on the same Node.
        const ws = join(dir.path, 'ws-node18');
        mkdirSync(join(ws, 'src'), { recursive: true });
        writeFileSync(join(ws, 'src', 'input.txt'), 'synced\n');
        const synced = await runOn(agent.address, keyFile, [
          '--workspace',
          ws,
          '--artifacts',
          'out/**',
          '--',
          'mkdir -p out && cat src/input.txt | tee out/result.txt',
        ]);
        assert.equal(synced.code, 0, describeRun(synced));
        assert.equal(synced.stdout, 'synced\n');
        assert.equal(readFileSync(join(ws, 'out', 'result.txt'), 'utf8'), 'synced\n');
        // A timeout ends the task's process group there too.
        const n = marker();
        const timed = await runOn(agent.address, keyFile, ['--timeout', '1', '--', `sleep ${n}`]);
        assert.equal(timed.code, 124, describeRun(timed));
        assert.deepEqual(await waitUntilGone(`^sleep ${n}`), []);
        agent.proc.kill('SIGTERM');
        assert.equal(await agent.exited, 0);
      } finally {
        await agent.stop();
      }
    });
  });

  it('a closed stderr (the ssh session is gone) is dropped: the agent keeps logging, serving and draining', async () => {
    const { path: keyFile } = newKeyFile(dir.path, 'k-pipe');
    const agent = await startAgent({ keyFile, name: 'nostderr', args: ['--log-level', 'debug'] });
    try {
      // Our end of its stderr goes away: its next log line meets EPIPE.
      agent.proc.stderr?.destroy();
      for (const word of ['first', 'second']) {
        const r = await runCli(runArgs(keyFile, agent.address, `echo ${word}`));
        assert.equal(r.code, 0, describeRun(r));
        assert.equal(r.stdout, `${word}\n`);
      }
      assert.equal(agent.proc.exitCode, null, 'the agent died writing its log');
      agent.proc.kill('SIGTERM');
      assert.equal(await agent.exited, 0);
    } finally {
      await agent.stop();
    }
  });

  it('a taken port is one line naming the agent that holds it', async () => {
    const { path: keyFile } = newKeyFile(dir.path, 'k-port');
    const first = await startAgent({ keyFile, name: 'first' });
    try {
      const workdir = join(dir.path, 'second');
      const r = runAgentFile([
        '--bind',
        '127.0.0.1',
        '--port',
        String(first.port),
        '--no-mdns',
        '--key-file',
        keyFile,
        '--workdir',
        workdir,
      ]);
      assert.equal(
        r.stderr,
        `octask-agent: port ${first.port} is taken, probably by another octask-agent (pid ${String(first.proc.pid)}): stop it or use --port\n`,
      );
      assert.equal(r.status, 2);
      assert.equal(first.proc.exitCode, null);
    } finally {
      await first.stop();
    }
  });

  it('SIGHUP drains like SIGTERM: the running task finishes, then the agent exits 0', async () => {
    const { path: keyFile } = newKeyFile(dir.path, 'k-hup');
    const agent = await startAgent({ keyFile, name: 'hangup' });
    try {
      const n = marker();
      const run = runCli(runArgs(keyFile, agent.address, `sleep 1.${n}; echo drained`));
      assert.ok((await waitUntilRunning(`^sleep 1\\.${n}`)).length > 0, 'the task never started');
      agent.proc.kill('SIGHUP');
      const r = await run;
      assert.equal(r.code, 0, describeRun(r));
      assert.equal(r.stdout, 'drained\n');
      assert.equal(await agent.exited, 0);
      assert.ok(agent.logs.some((l) => String(l.msg).startsWith('SIGHUP: draining')));
    } finally {
      await agent.stop();
    }
  });

  it('os.cpus() empty and no availableParallelism: counts 1 CPU, says so, and serves', async () => {
    const preload = join(dir.path, 'no-cpus.js');
    writeFileSync(
      preload,
      "const os = require('os'); os.cpus = () => []; delete os.availableParallelism;\n",
    );
    const { path: keyFile } = newKeyFile(dir.path, 'k-cpus');
    // No --max-jobs: the default is what must not become 0.
    const agent = await startAgent({ keyFile, name: 'nocpus', nodeArgs: ['-r', preload] });
    try {
      assert.ok(
        agent.logs.some(
          (l) => l.level === 'warn' && /os\.cpus\(\) lists no CPUs; counting 1/.test(String(l.msg)),
        ),
        'no warning about the CPU count',
      );
      const r = await runCli([
        'agents',
        '--json',
        '--agent',
        agent.address,
        '--key-file',
        keyFile,
        '--no-mdns',
      ]);
      const [info] = (JSON.parse(r.stdout) as { agents: Array<AgentInfo & { outdated: boolean }> })
        .agents;
      assert.equal(info?.cpus, 1, describeRun(r));
      assert.equal(info?.outdated, false, 'an agent of this very build is not older');
      const ran = await runCli(runArgs(keyFile, agent.address, 'echo one slot'));
      assert.equal(ran.code, 0, describeRun(ran));
      assert.equal(ran.stdout, 'one slot\n');
    } finally {
      await agent.stop();
    }
  });

  it('service install --user writes a unit that systemd-analyze verify accepts', function () {
    const home = join(dir.path, 'home');
    mkdirSync(home, { recursive: true });
    const r = runAgentFile(['service', 'install', '--user', '--name', 'pi', '--no-mdns'], {
      env: { HOME: home, XDG_CONFIG_HOME: '' },
    });
    assert.equal(r.status, 0, r.stderr);
    const path = join(home, '.config', 'systemd', 'user', 'octask-agent.service');
    assert.ok(r.stdout.startsWith(`Wrote ${path}.`), r.stdout);
    assert.ok(
      r.stdout.includes(
        '  systemctl --user daemon-reload && systemctl --user enable --now octask-agent\n',
      ),
    );
    assert.ok(r.stdout.includes('  loginctl enable-linger $USER\n'));
    const unit = readFileSync(path, 'utf8');
    const printed = runAgentFile(['service', 'print', '--name', 'pi', '--no-mdns']);
    assert.equal(printed.stdout, unit, 'service print shows what install wrote');

    // Strict content checks run everywhere, systemd-analyze or not.
    const lines = unit.split('\n');
    assert.ok(
      lines.includes(`ExecStart=${process.execPath} ${AGENT_BIN} --name pi --no-mdns`),
      unit,
    );
    for (const line of ['KillMode=mixed', 'Restart=on-failure', 'WantedBy=default.target'])
      assert.ok(lines.includes(line), `no ${line} in\n${unit}`);
    assert.deepEqual(
      lines.filter((l) => l.startsWith('[')),
      ['[Unit]', '[Service]', '[Install]'],
    );

    const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (analyze.error) {
      process.stderr.write(
        '\n    !!! systemd-analyze is not installed: the unit was checked by content only, NOT by systemd-analyze verify !!!\n\n',
      );
      return;
    }
    const runtime = join(dir.path, 'runtime');
    mkdirSync(runtime, { recursive: true, mode: 0o700 });
    const verify = spawnSync('systemd-analyze', ['verify', '--user', path], {
      encoding: 'utf8',
      env: { ...process.env, XDG_RUNTIME_DIR: runtime },
    });
    // verify exits 0 on mere warnings (an unknown key): any output is a failure too.
    assert.equal(verify.status, 0, verify.stderr);
    assert.equal(`${verify.stdout}${verify.stderr}`.trim(), '');
  });

  it('the shipped agent is one minified file with a shebang, its source map beside it', () => {
    const text = readFileSync(AGENT_BIN, 'utf8');
    assert.ok(text.startsWith('#!/usr/bin/env node\n'));
    const map = JSON.parse(readFileSync(`${AGENT_BIN}.map`, 'utf8')) as { sources: string[] };
    assert.ok(
      map.sources.some((s) => s.endsWith('agent/main.ts')),
      'the map names our sources',
    );
    // Runs from an empty folder, away from any node_modules.
    const lone = join(dir.path, 'lone');
    mkdirSync(lone);
    const copy = join(lone, 'octask-agent.js');
    writeFileSync(copy, text, { mode: 0o755 });
    const r = spawnSync(process.execPath, [copy, '--version'], { encoding: 'utf8', cwd: lone });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^octask-agent /);
  });

  it('a stack trace from the shipped file names our TypeScript sources', async () => {
    // A workdir that cannot be made is an error with a stack (not an Octask one).
    const preload = join(dir.path, 'mkdir-fails.js');
    writeFileSync(
      preload,
      "const fs = require('fs'); const real = fs.mkdirSync; fs.mkdirSync = function (p, o) { if (String(p).includes('no-such-place')) throw new Error('cannot make it'); return real.call(this, p, o); };\n",
    );
    const { path: keyFile } = newKeyFile(dir.path, 'k-stack');
    const child = spawn(
      process.execPath,
      [
        '-r',
        preload,
        AGENT_BIN,
        '--no-mdns',
        '--bind',
        '127.0.0.1',
        '--port',
        '0',
        '--key-file',
        keyFile,
        '--workdir',
        join(dir.path, 'no-such-place'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...cleanOctaskEnv() } },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((res) => child.once('close', res));
    assert.equal(code, 1, stderr);
    assert.match(stderr, /Error: cannot make it/);
    assert.match(stderr, /at \S+ \(\S*agent\/main\.ts:\d+:\d+\)/, stderr);
  });
});
