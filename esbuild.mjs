// One bundle per program; each runs with plain `node` and needs no node_modules.
import { build } from 'esbuild';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const production = process.argv.includes('--production');

/** The Node major the agent needs; the gate below and engines in docs say the same. */
const AGENT_MIN_NODE = 18;

const programs = [
  // The agent targets the oldest Node we support on devices, and ships as it
  // is built here: minified, behind a version gate, its source map beside it.
  { in: 'agent/bin.ts', out: 'dist/octask-agent.js', target: 'node18', bin: true, gated: true },
  { in: 'cli/bin.ts', out: 'dist/octask.js', target: 'node18', bin: true, splitOff: true },
  // Commands `octask` loads only when run: every `octask run` starts without
  // compiling them (a third of the CLI's code; about 20 ms of each start).
  { in: 'cli/dispatcherCommand.ts', out: 'dist/octask-dispatcher.js', target: 'node18' },
  { in: 'agent/main.ts', out: 'dist/octask-worker.js', target: 'node18' },
  { in: 'scripts/demo.ts', out: 'dist/demo.js', target: 'node20' },
  { in: 'bench/bench.ts', out: 'dist/bench.js', target: 'node20' },
  // The bench's Node floor for a first sync (bench/nodeFloor.ts runs it).
  { in: 'bench/floorPair.ts', out: 'dist/bench-floor.js', target: 'node20' },
  {
    in: 'extension/client/extension.ts',
    out: 'dist/extension.js',
    target: 'node20',
    external: ['vscode'],
  },
].filter((p) => existsSync(p.in));

/**
 * The CLI's imports of its rarely run commands, each a bundle of its own
 * beside it (see `programs`), loaded by path when the command runs. The
 * TypeScript import stays as it is, so the compiled tests load the modules.
 */
const SPLIT_OFF = {
  './dispatcherCommand.js': './octask-dispatcher.js',
  '../agent/main.js': './octask-worker.js',
};

const splitOff = {
  name: 'split-off-commands',
  setup(b) {
    b.onResolve({ filter: /^(\.\/dispatcherCommand|\.\.\/agent\/main)\.js$/ }, (args) =>
      args.importer.endsWith(join('cli', 'main.ts'))
        ? { path: SPLIT_OFF[args.path], external: true }
        : undefined,
    );
  },
};

const common = (p) => ({
  entryPoints: [p.in],
  outfile: p.out,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: p.target,
  external: p.external ?? [],
  legalComments: 'none',
  logLevel: 'warning',
  // msgpackr's optional native addon is not needed: its pure JS path is used.
  define: { 'process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED': '"true"' },
  plugins: p.splitOff ? [splitOff] : [],
});

/*
 * The first statements of the agent file, in ES5 so that any Node parses
 * them: an old Node (Raspberry Pi OS bullseye has 12) then prints one line
 * instead of a SyntaxError stack, because the program itself is a string
 * compiled only after the check. Source maps are switched on before that
 * compile, so stack traces name our files and lines.
 */
function gatedProgram(code) {
  const gate = [
    '#!/usr/bin/env node',
    `// octask-agent: the program is the string below, compiled once Node is new enough.`,
    `if (!(Number(process.versions.node.split('.')[0]) >= ${AGENT_MIN_NODE})) {`,
    `  process.stderr.write('Octask needs Node ${AGENT_MIN_NODE} or later; this is ' + process.versions.node + '\\n');`,
    '  process.exit(1);',
    '}',
    "if (typeof process.setSourceMapsEnabled === 'function') process.setSourceMapsEnabled(true);",
  ].join('\n');
  // Keep the line count: the source map counts lines from the top of `code`.
  const program = code.replace(/^#!.*/, '//');
  // JSON is a valid JS string literal, except U+2028/2029 for pre-2019 parsers.
  const literal = JSON.stringify(program)
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  return `${gate}\nmodule._compile(${literal}, __filename);\n`;
}

await Promise.all(
  programs.map(async (p) => {
    if (p.gated) {
      const result = await build({
        ...common(p),
        write: false,
        minify: true,
        sourcemap: 'linked',
        sourcesContent: false,
      });
      const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
      const map = result.outputFiles.find((f) => f.path.endsWith('.js.map'));
      if (!js || !map) throw new Error(`esbuild gave no script and map for ${p.in}`);
      if (!js.text.includes(`//# sourceMappingURL=${basename(p.out)}.map`))
        throw new Error(`${p.out} does not point at its source map`);
      // Made here: in a clean clone no other build may have made the folder yet.
      await mkdir(dirname(p.out), { recursive: true });
      await writeFile(p.out, gatedProgram(js.text));
      await writeFile(`${p.out}.map`, map.contents);
    } else {
      await build({
        ...common(p),
        sourcemap: production ? false : 'linked',
        minify: production,
      });
    }
    if (p.bin) await chmod(p.out, 0o755);
  }),
);
console.log(`built ${programs.map((p) => p.out).join(', ')}`);
