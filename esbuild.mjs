// One bundle per program; each runs with plain `node` and needs no node_modules.
import { build } from 'esbuild';
import { chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';

const production = process.argv.includes('--production');

const programs = [
  // The agent targets the oldest Node we support on devices.
  { in: 'agent/bin.ts', out: 'dist/octask-agent.js', target: 'node18', bin: true },
  { in: 'cli/bin.ts', out: 'dist/octask.js', target: 'node18', bin: true },
  { in: 'scripts/demo.ts', out: 'dist/demo.js', target: 'node20' },
  { in: 'bench/bench.ts', out: 'dist/bench.js', target: 'node20' },
  {
    in: 'extension/client/extension.ts',
    out: 'dist/extension.js',
    target: 'node20',
    external: ['vscode'],
  },
].filter((p) => existsSync(p.in));

await Promise.all(
  programs.map(async (p) => {
    await build({
      entryPoints: [p.in],
      outfile: p.out,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: p.target,
      external: p.external ?? [],
      sourcemap: production ? false : 'linked',
      minify: production,
      legalComments: 'none',
      logLevel: 'warning',
      // msgpackr's optional native addon is not needed: its pure JS path is used.
      define: { 'process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED': '"true"' },
    });
    if (p.bin) await chmod(p.out, 0o755);
  }),
);
console.log(`built ${programs.map((p) => p.out).join(', ')}`);
