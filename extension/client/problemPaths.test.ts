import assert from 'node:assert/strict';
import { CwdPathMapper } from './problemPaths';

/** The local workspace: a TypeScript package in packages/app and a C library beside it. */
const FILES = new Set([
  'packages/app/src/index.ts',
  'packages/app/src/util.js',
  'packages/app/main.go',
  'packages/lib/add.c',
  'README.md',
]);
const mapper = (cwd = 'packages/app'): CwdPathMapper => new CwdPathMapper(cwd, (p) => FILES.has(p));
const mapAll = (text: string, cwd?: string): string => {
  const m = mapper(cwd);
  return m.write(text) + m.flush();
};

describe('CwdPathMapper', () => {
  it('$tsc: maps `src/index.ts(3,5)` printed from packages/app to the workspace-relative path', () => {
    assert.equal(
      mapAll("src/index.ts(3,5): error TS2322: Type 'string' is not assignable.\n"),
      "packages/app/src/index.ts(3,5): error TS2322: Type 'string' is not assignable.\n",
    );
  });

  it('$tsc --pretty: maps the path between colour codes', () => {
    const line =
      '\x1b[96msrc/index.ts\x1b[0m:\x1b[93m3\x1b[0m:\x1b[93m5\x1b[0m - error TS2322: x\n';
    assert.equal(mapAll(line), line.replace('src/index.ts', 'packages/app/src/index.ts'));
  });

  it('$eslint-compact: maps `src/util.js: line 1, col 2`', () => {
    assert.equal(
      mapAll('src/util.js: line 1, col 2, Error - Missing semicolon. (semi)\n'),
      'packages/app/src/util.js: line 1, col 2, Error - Missing semicolon. (semi)\n',
    );
  });

  it('$eslint-stylish: a `./`-relative file line keeps its `./` so the matcher still sees a path', () => {
    assert.equal(
      mapAll('./src/util.js\n  1:2  error  Missing semicolon  semi\n'),
      './packages/app/src/util.js\n  1:2  error  Missing semicolon  semi\n',
    );
  });

  it('$go: maps `./main.go:3:5:` and `main.go:3:5:`', () => {
    assert.equal(mapAll('main.go:3:5: undefined: x\n'), 'packages/app/main.go:3:5: undefined: x\n');
    assert.equal(
      mapAll('./main.go:3:5: undefined: x\n'),
      './packages/app/main.go:3:5: undefined: x\n',
    );
  });

  it('gcc: maps `../lib/add.c:3:5: error:` to the sibling package', () => {
    assert.equal(
      mapAll("../lib/add.c:3:5: error: expected ';'\n"),
      "packages/lib/add.c:3:5: error: expected ';'\n",
    );
  });

  it('leaves absolute paths, words, missing files and paths out of the workspace alone', () => {
    const text = [
      '/home/me/ws/packages/app/src/index.ts(1,1): error TS1: x',
      'error: something failed',
      'src/missing.ts(1,1): error TS1: x',
      '../../../etc/passwd: line 1, col 1, Error - x (y)',
      '  src/index.ts(1,1): indented, no matcher takes it',
      'C:/src/index.ts(1,1): error TS1: x',
      '',
    ].join('\n');
    assert.equal(mapAll(text), text);
  });

  it('with the workspace root as cwd (""), paths are already workspace-relative', () => {
    assert.equal(mapAll('README.md:1:1: x\n', ''), 'README.md:1:1: x\n');
  });

  it('maps a path split across chunks, and passes a partial line on once it cannot be a path', () => {
    const m = mapper();
    assert.equal(m.write('src/ind'), '', 'a first word still growing is held');
    assert.equal(m.write('ex.ts(3,5): err'), 'packages/app/src/index.ts(3,5): err');
    // The rest of that line is not a line start: `src/index.ts` inside it is left alone.
    assert.equal(m.write('or src/index.ts(1,1)\n'), 'or src/index.ts(1,1)\n');
    assert.equal(m.write('Password: '), 'Password: ', 'a prompt is not held back');
    assert.equal(m.write('\nmain.go'), '\n');
    assert.equal(m.flush(), 'packages/app/main.go');
  });

  it('keeps \\r\\n line ends and maps each line', () => {
    assert.equal(
      mapAll('src/index.ts(1,1): error TS1: a\r\nmain.go:1:1: b\r\n'),
      'packages/app/src/index.ts(1,1): error TS1: a\r\npackages/app/main.go:1:1: b\r\n',
    );
  });
});
