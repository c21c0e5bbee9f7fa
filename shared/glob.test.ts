import assert from 'node:assert/strict';
import { createMatcher, expandBraces, globBases, globToRegExp, matchesAnyGlob } from './glob';

function check(pattern: string, yes: string[], no: string[]): void {
  const re = globToRegExp(pattern);
  for (const p of yes) assert.ok(re.test(p), `${pattern} should match ${p}`);
  for (const p of no) assert.ok(!re.test(p), `${pattern} should not match ${p}`);
}

describe('glob', () => {
  it('* stays within one segment', () => {
    check('src/*.ts', ['src/a.ts', 'src/.hidden.ts'], ['src/a/b.ts', 'src/a.tsx', 'lib/src/a.ts']);
  });

  it('? is one character, never a slash', () => {
    check('a?c', ['abc', 'x/a.c'], ['ac', 'abbc', 'a/c']);
  });

  it('** crosses any number of segments, including none', () => {
    check('src/**/*.ts', ['src/a.ts', 'src/x/y/z.ts'], ['a.ts', 'lib/src/a.ts', 'src/a.js']);
    check('**/test/*.js', ['test/a.js', 'x/y/test/a.js'], ['test/a/b.c.ts', 'xtest/a.js']);
    check('dist/**', ['dist/a', 'dist/a/b/c'], ['dist', 'distx/a', 'x/dist/a']);
  });

  it('** inside a segment is just *', () => {
    check('a**b', ['ab', 'axxb'], ['a/b', 'ax/yb']);
  });

  it('a pattern without a slash matches a name at any depth, like .gitignore', () => {
    check('*.log', ['debug.log', 'a/b/c.log'], ['log', 'a.log.txt']);
    check('node_modules', ['node_modules', 'a/node_modules'], ['node_modules_x', 'xnode_modules']);
  });

  it('a folder match takes everything under it', () => {
    check('node_modules', ['node_modules/x/index.js', 'pkg/node_modules/y'], []);
    check('build/', ['build/out.js', 'sub/build/x'], ['builder/x']);
  });

  it('a slash anchors to the workspace root', () => {
    check('/build', ['build', 'build/x'], ['a/build']);
    check('docs/*.md', ['docs/a.md'], ['x/docs/a.md']);
  });

  it('{a,b} expands, nested too', () => {
    check('*.{ts,js}', ['a.ts', 'b/c.js'], ['a.tsx', 'a.json']);
    check(
      '{src,test}/**/*.{c,h{,pp}}',
      ['src/a.c', 'test/x/y.hpp', 'src/z.h'],
      ['lib/a.c', 'src/a.cc'],
    );
    assert.deepEqual(expandBraces('a{b,c{d,e}}f'), ['abf', 'acdf', 'acef']);
    assert.deepEqual(expandBraces('a{b'), ['a{b']);
  });

  it('refuses a brace explosion', () => {
    assert.throws(() => expandBraces('{a,b}'.repeat(11)), /too many alternatives/);
  });

  it('[...] classes, negated with ! or ^, never matching a slash', () => {
    check('file[0-9].txt', ['file3.txt'], ['filex.txt', 'file10.txt']);
    check('[!a]b', ['xb', 'zb'], ['ab', '/b']);
    check('x[^a]y', ['xby'], ['xay', 'x/y']);
    check('[]x]', [']', 'x'], ['y']);
  });

  it('escapes and regex characters are literal', () => {
    check('a\\*b', ['a*b'], ['axb']);
    check('a.b', ['a.b'], ['axb']);
    check('(x)+$', ['(x)+$'], ['x', 'xx']);
    check('[unclosed', ['[unclosed'], ['u']);
  });

  it('createMatcher matches any pattern, and nothing without patterns', () => {
    const m = createMatcher(['*.log', 'dist/**']);
    assert.equal(m('a/b.log'), true);
    assert.equal(m('dist/x.js'), true);
    assert.equal(m('src/x.js'), false);
    assert.equal(createMatcher([])('anything'), false);
  });

  it('globBases finds the literal folder to walk, or the whole workspace', () => {
    assert.deepEqual(globBases('dist/**'), ['dist']);
    assert.deepEqual(globBases('/out/bin/*.so'), ['out/bin']);
    assert.deepEqual(globBases('*.log'), ['']);
    assert.deepEqual(globBases('**/x'), ['']);
    assert.deepEqual(globBases('{build,dist}/**'), ['build', 'dist']);
    assert.deepEqual(globBases('docs/a.md'), ['docs/a.md']);
  });
});

describe('matchesAnyGlob', () => {
  it('matches a folder pattern below it, a basename pattern anywhere, and nothing for no patterns', () => {
    assert.equal(matchesAnyGlob(['node_modules'], 'node_modules/x/index.js'), true);
    assert.equal(matchesAnyGlob(['*.o', 'target'], 'src/deep/a.o'), true);
    assert.equal(matchesAnyGlob(['*.o'], 'a.c'), false);
    assert.equal(matchesAnyGlob([], 'anything'), false);
  });
});
