import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runCli, startAgent, tempDir } from '../helpers/agentProcess';
import { writeFile } from '../helpers/gitRepo';

interface AgentFigures {
  filesSent: number;
  removed: number;
  kept: number;
  waitedMs: number;
  artifacts: { files: number; bytes: number };
}
interface RunDoc {
  tasks: Array<{ status: string; exitCode: number | null; error?: { code: string } }>;
  sync?: { files: number; filesSent: number; removed: number; kept: number };
  artifacts?: { files: number; bytes: number };
  agents?: Record<string, AgentFigures>;
}

describe('workspace copies behave like a checkout, through the CLI @integration', function () {
  this.timeout(120_000);
  const dir = tempDir();
  const ws = join(dir.path, 'project');
  let keyFile: string;
  let alpha: StartedAgent;
  let beta: StartedAgent;

  const cli = async (
    agents: StartedAgent[],
    args: string[],
    onStdout?: (text: string) => void,
  ): Promise<{ doc: RunDoc | null; stdout: string; stderr: string; code: number | null }> => {
    const r = await runCli(
      [
        'run',
        ...agents.flatMap((a) => ['--agent', a.address]),
        '--key-file',
        keyFile,
        '--no-mdns',
        '--workspace',
        ws,
        ...args,
      ],
      { cwd: ws, onSpawn: (p) => onStdout && p.stdout?.on('data', (d) => onStdout(String(d))) },
    );
    let doc: RunDoc | null = null;
    if (args.includes('--json')) {
      try {
        doc = JSON.parse(r.stdout) as RunDoc;
      } catch {
        throw new Error(`no JSON from octask run (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
      }
    }
    return { doc, ...r };
  };
  const run = (args: string[]) => cli([alpha], ['--json', ...args]);
  const copyOf = (agent: StartedAgent, rel: string): string => {
    const root = join(agent.workdir, 'workspaces');
    const [name] = readdirSync(root).filter((n) => n.startsWith('project-'));
    assert.ok(name, `no copy of the workspace on ${agent.name}`);
    return join(root, name, 'tree', rel);
  };

  before(async () => {
    keyFile = newKeyFile(dir.path).path;
    writeFile(ws, 'src/main.c', 'int main(void) { return 0; }\n');
    writeFile(ws, 'src/util.c', 'int util;\n');
    writeFile(ws, 'web/package-lock.json', '{"v":1}\n');
    writeFile(ws, 'web/index.js', 'console.log(1)\n');
    alpha = await startAgent({ keyFile, name: 'alpha', maxJobs: 2 });
    beta = await startAgent({ keyFile, name: 'beta', maxJobs: 2 });
  });
  after(async () => {
    await Promise.all([alpha?.stop(), beta?.stop()]);
    dir.cleanup();
  });

  it('keeps what a task made for the next task, and says so', async () => {
    const first = await run([
      '--',
      'mkdir -p node_modules/jest && echo 1 > node_modules/jest/a.js',
    ]);
    assert.equal(first.code, 0, first.stderr);
    const next = await cli([alpha], ['--', 'cat node_modules/jest/a.js']);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stdout, /^1$/m);
    assert.match(next.stderr, /alpha: sent 0 \(0 B\), kept 1 built file; 4 files, \d+ ms/);
    assert.doesNotMatch(next.stderr, /\r/, 'no progress line when piped');
    const doc = (await run(['--', 'true'])).doc;
    assert.equal(doc?.agents?.alpha?.kept, 1);
    assert.equal(doc?.sync?.kept, 1);
  });

  it('removes a file deleted locally, and only that', async () => {
    writeFile(ws, 'src/old.c', 'old\n');
    await run(['--', 'test -e src/old.c']);
    rmSync(join(ws, 'src/old.c'));
    const r = await run(['--', 'test ! -e src/old.c && test -e node_modules/jest/a.js']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.doc?.agents?.alpha?.removed, 1);
  });

  it('--clean gives a fresh copy, except what --preserve keeps at any depth', async () => {
    await run(['--', 'mkdir -p build/deep && touch build/deep/x.o build/keep.txt src/util.o']);
    const r = await run(['--clean', '--preserve', '*.o', '--', 'find . -name "*.o" | sort']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\.\/build\/deep\/x\.o\n\.\/src\/util\.o/);
    assert.equal(existsSync(copyOf(alpha, 'node_modules')), false);
    assert.equal(existsSync(copyOf(alpha, 'build/keep.txt')), false);
  });

  it('refuses a bad --cwd before anything is synced', async () => {
    writeFile(ws, 'src/main.c', 'changed, but must not travel\n');
    const syncsBefore = alpha.logs.filter((l) => l.msg === 'workspace synced').length;
    const r = await cli([alpha], ['--cwd', 'no/such/dir', '--', 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /E_BAD_PATH.*no\/such\/dir/);
    assert.equal(alpha.logs.filter((l) => l.msg === 'workspace synced').length, syncsBefore);
    assert.equal(
      readFileSync(copyOf(alpha, 'src/main.c'), 'utf8'),
      'int main(void) { return 0; }\n',
    );
    writeFile(ws, 'src/main.c', 'int main(void) { return 0; }\n');
  });

  it('runs setup once for two shards on one agent, again once the key file changes', async () => {
    const count = join(dir.path, 'setup-runs');
    const setup = `echo run >> ${count} && mkdir -p node_modules && touch node_modules/.installed`;
    const args = ['--cwd', 'web', '--setup', setup, '--setup-key', 'package-lock.json'];
    const runs = (): number =>
      existsSync(count) ? readFileSync(count, 'utf8').split('\n').filter(Boolean).length : 0;
    const r = await run([
      ...args,
      '--target',
      'alpha',
      '--shards',
      '2',
      '--',
      'test -e node_modules/.installed',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.doc?.tasks.map((t) => t.status),
      ['completed', 'completed'],
    );
    assert.equal(runs(), 1);
    await run([...args, '--', 'true']);
    assert.equal(runs(), 1, 'same key: no second setup');
    writeFile(ws, 'web/package-lock.json', '{"v":2}\n');
    await run([...args, '--', 'true']);
    assert.equal(runs(), 2, 'the lockfile changed');
  });

  it('fails the task with the setup output when setup fails, and tries it again next time', async () => {
    const args = ['--setup', 'echo broken-setup; exit 3', '--', 'echo must-not-run'];
    const r = await run(args);
    assert.equal(r.doc?.tasks[0]?.status, 'failed');
    assert.equal(r.doc?.tasks[0]?.error?.code, 'E_SETUP_FAILED');
    assert.match(r.stderr, /broken-setup/);
    assert.doesNotMatch(r.stderr, /must-not-run/);
    const again = await run(args);
    assert.match(again.stderr, /broken-setup/);
  });

  it('brings --target all artifacts back side by side, named for each agent', async () => {
    const r = await cli(
      [alpha, beta],
      [
        '--target',
        'all',
        '--artifacts',
        'out/**',
        '--',
        'mkdir -p out && echo $OCTASK_AGENT_NAME > out/arch',
      ],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(ws, 'out/alpha/arch'), 'utf8'), 'alpha\n');
    assert.equal(readFileSync(join(ws, 'out/beta/arch'), 'utf8'), 'beta\n');
    assert.equal(existsSync(join(ws, 'out/arch')), false);
    assert.match(r.stderr, /alpha: brought back 1 artifact/);
    assert.match(r.stderr, /beta: brought back 1 artifact/);
    rmSync(join(ws, 'out'), { recursive: true });
  });

  it('takes artifact globs relative to --cwd, and warns of one that matched nothing', async () => {
    const r = await cli(
      [alpha],
      [
        '--cwd',
        'web',
        '--artifacts',
        'dist/*',
        '--artifacts',
        'nothing/*',
        '--',
        'mkdir -p dist && echo js > dist/app.js',
      ],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(ws, 'web/dist/app.js'), 'utf8'), 'js\n');
    assert.match(r.stderr, /warning: alpha: --artifacts nothing\/\* matched no file/);
    rmSync(join(ws, 'web/dist'), { recursive: true });
  });

  it('maps the agent’s copy paths in the output to the local workspace', async () => {
    const r = await cli([alpha], ['--', 'echo "$PWD/src/main.c:1: note"']);
    assert.equal(r.stdout, `${ws}/src/main.c:1: note\n`);
  });

  it('does not change a copy under a running task of the same workspace: the sync waits', async () => {
    writeFile(ws, 'web/msg.txt', 'before\n');
    await run(['--', 'true']);
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const slow = cli([alpha], ['--', 'echo slow-started; sleep 2; cat web/msg.txt'], (text) => {
      if (text.includes('slow-started')) started();
    });
    await running;
    writeFile(ws, 'web/msg.txt', 'after\n');
    const quick = await run(['--', 'cat web/msg.txt']);
    const first = await slow;
    assert.match(first.stdout, /^before$/m, 'the running task saw its copy unchanged');
    assert.match(quick.stderr, /^after$/m);
    assert.ok((quick.doc?.agents?.alpha?.waitedMs ?? 0) > 500, JSON.stringify(quick.doc?.agents));
    assert.match(quick.stderr, /alpha: waiting for 1 running task of this workspace there/);
  });
});
