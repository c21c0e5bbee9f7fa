import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, runOn, startAgent, tempDir } from '../helpers/agentProcess';
import { git, initRepo, writeFile } from '../helpers/gitRepo';

const MIB = 1024 * 1024;

/** Bytes in use on a file system. */
function used(path: string): number {
  const st = statfsSync(path);
  return (st.blocks - st.bfree) * st.bsize;
}

describe('an agent whose disk is full @integration', function () {
  this.timeout(120_000);
  const dir = tempDir();
  const workdir = join(dir.path, 'tmpfs');
  let keyFile: string;
  let agent: StartedAgent | undefined;
  let mounted = false;

  const repo = (name: string, files: Record<string, string | Buffer>): string => {
    const root = join(dir.path, name);
    mkdirSync(root, { recursive: true });
    initRepo(root);
    for (const [rel, body] of Object.entries(files)) writeFile(root, rel, body as string);
    git(root, 'add', '-A');
    git(root, 'commit', '-qm', 'fixture');
    return root;
  };
  const start = async (args: string[] = []): Promise<StartedAgent> =>
    (agent = await startAgent({ keyFile, name: 'small', args: ['--workdir', workdir, ...args] }));
  const run = (cwd: string, command = 'cat *.txt | wc -c') =>
    runOn(agent!.address, keyFile, ['--', command], {
      cwd,
    });

  before(() => {
    keyFile = newKeyFile(dir.path).path;
    mkdirSync(workdir);
    // Root is needed to mount; without it this suite must fail, not skip.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', workdir]);
    mounted = true;
  });
  after(async () => {
    await agent?.stop();
    if (mounted) execFileSync('umount', [workdir]);
    dir.cleanup();
  });

  it('refuses a sync that cannot fit with E_NO_SPACE, leaves nothing behind, and a 6-byte sync then works', async () => {
    await start();
    const idle = used(workdir);
    const big: Record<string, Buffer> = {};
    for (let i = 0; i < 12; i++) big[`part${i}.bin`] = randomBytes(MIB);
    const r = await run(repo('big', big));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /E_NO_SPACE/);
    assert.match(r.stderr, /needs 12\.0 MiB \(\d+ bytes\), [\d.]+ MiB free on disk/);
    assert.ok(
      used(workdir) - idle < 256 * 1024,
      `the failed sync left ${used(workdir) - idle} bytes`,
    );
    const small = await run(repo('tiny', { 'six.txt': 'six b\n' }));
    assert.equal(small.code, 0, small.stderr);
    assert.match(small.stdout, /^6$/m);
  });

  it('writes each synced file once, and an agent set up with the old --cache-size still starts', async () => {
    const before = used(workdir);
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 6; i++) files[`half${i}.bin`] = randomBytes(MIB / 2);
    const root = repo('first', files);
    const first = await run(root);
    assert.equal(first.code, 0, first.stderr);
    // Agents before 0.3 kept a store beside the copy: 6 MiB for these 3.
    const grew = used(workdir) - before;
    assert.ok(grew < 3 * MIB + 256 * 1024, `3 MiB synced took ${(grew / MIB).toFixed(2)} MiB`);
    await agent!.stop();
    // What an older agent's store left is removed on start.
    mkdirSync(join(workdir, 'store', 'ab'), { recursive: true });
    writeFileSync(join(workdir, 'store', 'ab', 'old-blob'), randomBytes(MIB));
    await start(['--cache-size', '1M']);
    assert.ok(
      agent!.logs.some((l) => /--cache-size .* no longer does anything/.test(String(l.msg))),
      'the old flag is warned about',
    );
    assert.equal(existsSync(join(workdir, 'store')), false, 'the old store is gone');
    const again = await run(root, 'cat *.bin | wc -c');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^3145728$/m, 'the copy is whole after the restart');
    const small = await run(repo('after-restart', { 'six.txt': 'six b\n' }));
    assert.equal(small.code, 0, small.stderr);
    assert.match(small.stdout, /^6$/m);
  });
});
