import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runCli, startAgent, tempDir } from '../helpers/agentProcess';
import { git, initRepo, writeFile } from '../helpers/gitRepo';

interface RunDoc {
  tasks: Array<{ status: string; exitCode: number | null }>;
  sync?: { files: number; filesSent: number; bytesSent: number; ms: number };
  artifacts?: { files: number; bytes: number };
}

const FILES = 3000;

describe('octask run syncs the git workspace to the agent @integration', function () {
  this.timeout(120_000);
  const dir = tempDir();
  const repo = join(dir.path, 'project');
  let keyFile: string;
  let agent: StartedAgent;
  const expected = new Map<string, string>();

  /** `octask run` against the agent, as it exits (no JSON when it refuses the flags). */
  const runRaw = (args: string[], cwd = repo, env?: NodeJS.ProcessEnv) =>
    runCli(['run', '--agent', agent.address, '--key-file', keyFile, '--no-mdns', ...args], {
      cwd,
      env,
    });
  const run = async (
    args: string[],
    cwd = repo,
    env?: NodeJS.ProcessEnv,
  ): Promise<{ doc: RunDoc; stdout: string; stderr: string; code: number | null }> => {
    const r = await runRaw(['--json', ...args], cwd, env);
    let doc: RunDoc;
    try {
      doc = JSON.parse(r.stdout) as RunDoc;
    } catch {
      throw new Error(`no JSON from octask run (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
    }
    return { doc, stdout: r.stdout, stderr: r.stderr, code: r.code };
  };
  const put = (rel: string, body: string, mode?: number): void => {
    writeFile(repo, rel, body, mode);
    expected.set(rel, createHash('sha256').update(body).digest('hex'));
  };

  before(async () => {
    keyFile = newKeyFile(dir.path).path;
    writeFile(dir.path, 'project/.keep', '');
    rmSync(join(repo, '.keep'));
    initRepo(repo);
    for (let i = 0; i < FILES; i++)
      put(`src/m${i % 30}/file${i}.txt`, `content of file ${i}\n`.repeat((i % 7) + 1));
    put('run.sh', '#!/bin/sh\necho tool ran\n', 0o755);
    put('.gitignore', 'ignored/\n*.log\n');
    writeFile(repo, 'ignored/secret.txt', 'must not travel\n');
    writeFile(repo, 'debug.log', 'must not travel\n');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'fixture');
    put('untracked.md', 'untracked but not ignored\n');
    agent = await startAgent({ keyFile, name: 'builder' });
  });
  after(async () => {
    await agent?.stop();
    dir.cleanup();
  });

  /** sha256 of every file in the agent's copy, as "hash  ./path" lines. */
  const listing = 'find . -type f | LC_ALL=C sort | while IFS= read -r f; do sha256sum "$f"; done';

  it('lays out every file byte-identical, executable bits kept, ignored files absent', async () => {
    const r = await run(['--', listing]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.doc.sync?.files, expected.size);
    assert.equal(r.doc.sync?.filesSent, expected.size);
    const got = new Map(
      r.stderr
        .split('\n')
        .filter((l) => /^[0-9a-f]{64} {2}\.\//.test(l))
        .map((l) => [l.slice(68), l.slice(0, 64)] as const),
    );
    assert.equal(got.size, expected.size);
    for (const [path, hash] of expected) assert.equal(got.get(path), hash, path);
    assert.ok(!got.has('ignored/secret.txt') && !got.has('debug.log'));
    const tool = await run(['--', './run.sh']);
    assert.equal(tool.code, 0, tool.stderr);
    assert.match(tool.stderr, /tool ran/);
  });

  it('sends no file bodies when nothing changed, and one when one file changed', async () => {
    const same = await run(['--', 'true']);
    assert.equal(same.doc.sync?.filesSent, 0);
    assert.equal(same.doc.sync?.bytesSent, 0);
    put('src/m1/file1.txt', 'changed\n');
    const one = await run(['--', 'cat src/m1/file1.txt']);
    assert.equal(one.doc.sync?.filesSent, 1);
    assert.match(one.stderr, /^changed$/m);
  });

  it('propagates deletions', async () => {
    rmSync(join(repo, 'untracked.md'));
    expected.delete('untracked.md');
    const r = await run(['--', 'test ! -e untracked.md && echo deleted-there']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /deleted-there/);
  });

  it("runs in the current folder's place in the workspace, or --cwd", async () => {
    const r = await run(['--', 'pwd'], join(repo, 'src', 'm3'));
    assert.match(r.stderr, /\/src\/m3\n/);
    const c = await run(['--cwd', 'src', '--', 'pwd']);
    assert.match(c.stderr, /\/src\n/);
  });

  it('brings artifacts back into the workspace, only when changed', async () => {
    const cmd =
      'mkdir -p out/sub && echo built > out/sub/result.txt && printf "#!/bin/sh\\n" > out/app && chmod 755 out/app';
    const r = await run(['--artifacts', 'out/**', '--', cmd]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.doc.artifacts, { files: 2, bytes: 6 + 10 });
    assert.equal(readFileSync(join(repo, 'out/sub/result.txt'), 'utf8'), 'built\n');
    assert.equal(statSync(join(repo, 'out/app')).mode & 0o111, 0o111);
    const again = await run(['--artifacts', 'out/**', '--', cmd]);
    assert.equal(again.doc.artifacts?.files, 0);
  });

  it('keeps what tasks made on the agent between runs, and --preserve folders even with --clean', async () => {
    await run([
      '--preserve',
      'node_modules',
      '--',
      'mkdir -p node_modules && echo kept > node_modules/marker',
    ]);
    const r = await run(['--preserve', 'node_modules', '--', 'cat node_modules/marker']);
    assert.match(r.stderr, /^kept$/m);
    // Task-made files stay without --preserve too (a checkout); --clean removes them.
    const still = await run(['--', 'cat node_modules/marker']);
    assert.match(still.stderr, /^kept$/m);
    const gone = await run(['--clean', '--', 'test -e node_modules/marker || echo cleaned']);
    assert.match(gone.stderr, /^cleaned$/m);
  });

  it('does not sync outside a git tree unless asked, and --workspace syncs any folder', async () => {
    const outside = tempDir();
    try {
      writeFile(outside.path, 'plain.txt', 'plain\n');
      const none = await run(['--', 'test -e plain.txt || echo not-synced'], outside.path);
      assert.equal(none.doc.sync, undefined);
      assert.match(none.stderr, /not-synced/);
      const some = await run(['--workspace', outside.path, '--', 'cat plain.txt'], outside.path);
      assert.equal(some.doc.sync?.files, 1);
      assert.match(some.stderr, /^plain$/m);
    } finally {
      outside.cleanup();
    }
  });

  it('runs, with a warning, when its hash cache cannot be written', async () => {
    // The cache folder would be under a plain file: every write of it fails.
    writeFile(dir.path, 'cache-is-a-file', 'not a folder\n');
    const cacheHome = join(dir.path, 'cache-is-a-file');
    const r = await run(['--', 'cat run.sh'], repo, { XDG_CACHE_HOME: cacheHome });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.doc.tasks[0]?.status, 'completed');
    assert.match(r.stderr, /echo tool ran/);
    assert.match(
      r.stderr,
      /octask: warning: the hash cache was not saved \(.*\); the next run reads every file again/,
    );
    assert.equal(readFileSync(cacheHome, 'utf8'), 'not a folder\n');
  });

  it('refuses --setup-key without --setup, and an empty --setup, before it reads the workspace', async () => {
    const cacheHome = join(dir.path, 'cache-usage');
    for (const [args, message] of [
      [['--setup-key', 'package-lock.json'], /--setup-key needs --setup CMD/],
      [['--setup', ' '], /--setup needs a command/],
    ] as const) {
      const r = await runRaw([...args, '--', 'true'], repo, { XDG_CACHE_HOME: cacheHome });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    }
    // Nothing was hashed: no hash cache was written.
    assert.equal(existsSync(cacheHome), false);
  });

  it('refuses a workspace symlink that leads outside, telling the user, and still runs', async () => {
    writeFile(dir.path, 'outside-secret.txt', 'secret\n');
    const { symlinkSync } = await import('node:fs');
    symlinkSync('../outside-secret.txt', join(repo, 'escape'));
    try {
      const r = await run(['--', 'test -e escape || echo no-escape']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /not synced: escape: .*outside/);
      assert.match(r.stderr, /no-escape/);
    } finally {
      rmSync(join(repo, 'escape'));
    }
  });

  it('keeps file modes in the manifest (a file made executable is executable there)', async () => {
    chmodSync(join(repo, 'src/m2/file2.txt'), 0o755);
    const r = await run(['--', 'test -x src/m2/file2.txt && echo now-exec']);
    assert.match(r.stderr, /now-exec/);
    assert.ok(existsSync(join(repo, 'src/m2/file2.txt')));
  });
});
