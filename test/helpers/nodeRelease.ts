import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/*
 * Other Node releases for the tests that check the agent on the oldest Node
 * it supports (and the line it prints on older ones). They come from the npm
 * registry (the node-<os>-<arch> packages hold the official binaries) into a
 * cache folder outside the repo, once per machine; CI needs nothing else.
 */

function cacheRoot(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'octask', 'node');
}

/**
 * The path of `node` VERSION, fetched if this machine has not got it. Throws
 * (so the test fails, loudly) when it cannot be fetched: these tests never skip.
 */
export function nodeRelease(version: string): string {
  const dir = join(cacheRoot(), version);
  const node = join(dir, 'bin', 'node');
  if (existsSync(node)) return node;
  const pkg = `node-${process.platform}-${process.arch}@${version}`;
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('npm', ['pack', pkg, '--silent'], { cwd: dir, stdio: 'pipe', timeout: 300_000 });
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error('npm pack wrote no tarball');
    execFileSync('tar', ['xzf', tarball, '--strip-components=1', 'package/bin/node'], {
      cwd: dir,
      stdio: 'pipe',
    });
    rmSync(join(dir, tarball));
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    throw new Error(
      `cannot fetch Node ${version} (npm package ${pkg}) into ${dir}: ${e.stderr?.toString().trim() || e.message}`,
    );
  }
  if (!existsSync(node)) throw new Error(`${pkg} has no bin/node`);
  return node;
}
