import assert from 'node:assert/strict';
import {
  checkRelativePath,
  findCaseClashes,
  isInsideWorkspace,
  depthOf,
  resolveLink,
  nameProblemsOn,
} from './workspacePath';

function assertRejected(path: string, reasonPart: RegExp): void {
  const reason = checkRelativePath(path);
  assert.ok(reason !== null, `${JSON.stringify(path)} should be rejected`);
  assert.match(reason, reasonPart, `reason for ${JSON.stringify(path)}`);
}

describe('checkRelativePath', () => {
  it('accepts ordinary relative paths', () => {
    for (const ok of [
      'a',
      'src/main.ts',
      '.gitignore',
      '.github/workflows/ci.yml',
      'a/.git-keep',
      'a/..b/c..',
      '...',
      'dir.git/x',
      'ünïcødé/文件.txt',
      'emoji/😀.md',
      'x'.repeat(255),
    ]) {
      assert.equal(checkRelativePath(ok), null, ok);
    }
  });

  it('rejects the empty path', () => assertRejected('', /empty/));

  it('rejects absolute paths of every platform', () => {
    assertRejected('/etc/passwd', /absolute/);
    assertRejected('/', /absolute/);
    assertRejected('C:\\Windows\\x', /absolute.*drive/);
    assertRejected('c:/Windows/x', /absolute.*drive/);
    assertRejected('C:x', /absolute.*drive/);
    assertRejected('\\\\server\\share\\x', /absolute.*UNC/);
  });

  it('rejects ".." and "." segments wherever they are', () => {
    for (const p of ['..', '../x', 'a/../../x', 'a/..', 'a/b/../c']) assertRejected(p, /"\.\."/);
    for (const p of ['.', './x', 'a/./b', 'a/.']) assertRejected(p, /"\."/);
  });

  it('rejects empty segments, including leading and trailing slashes', () => {
    assertRejected('a//b', /empty segment/);
    assertRejected('a/', /empty segment/);
  });

  it('rejects backslashes, which are separators on Windows', () => {
    assertRejected('a\\b', /backslash/);
    assertRejected('..\\..\\x', /backslash/);
  });

  it('rejects NUL and other control characters', () => {
    assertRejected('a\u0000b', /control character U\+0000/);
    assertRejected('a\nb', /control character U\+000A/);
    assertRejected('a\tb', /control/);
    assertRejected('a\u001bb', /control/);
    assertRejected('a\u007fb', /control/);
    assertRejected('a\u009bb', /control/);
  });

  it('rejects lone surrogates, which have no UTF-8 form', () => {
    assertRejected('a\uD800b', /surrogate/);
    assertRejected('a\uDC00', /surrogate/);
  });

  it('rejects .git as any segment, in any case', () => {
    for (const p of ['.git', '.git/config', 'sub/.git/hooks/pre-commit', '.GIT/x', 'a/.Git']) {
      assertRejected(p, /\.git/);
    }
  });

  it('rejects over-long paths and names, counted in UTF-8 bytes', () => {
    assertRejected('x'.repeat(256), /name longer than 255 bytes/);
    // 128 two-byte characters: 128 characters but 256 bytes.
    assertRejected('é'.repeat(128), /name longer than 255 bytes/);
    assert.equal(checkRelativePath('é'.repeat(127)), null);
    const longPath = Array.from({ length: 20 }, () => 'd'.repeat(250)).join('/');
    assertRejected(longPath, /longer than 4096 bytes/);
    const justFits = Array.from({ length: 16 }, () => 'd'.repeat(255)).join('/');
    assert.equal(Buffer.byteLength(justFits), 4095);
    assert.equal(checkRelativePath(justFits), null);
  });
});

describe('nameProblemsOn', () => {
  it('accepts on Linux, Android and macOS whatever checkRelativePath accepts', () => {
    for (const platform of ['linux', 'android', 'darwin'] as const) {
      for (const p of ['CON', 'aux.txt', 'a:b', 'trailing.', 'q?']) {
        assert.equal(nameProblemsOn(platform, p), null, `${platform} ${p}`);
      }
    }
  });

  it('rejects Windows device names with any extension and in any case', () => {
    for (const p of [
      'CON',
      'con',
      'prn.txt',
      'src/AUX.c',
      'NUL',
      'nul.tar.gz',
      'COM1',
      'com9.log',
      'LPT1',
      'lpt9',
      'COM¹',
      'CONIN$',
      'NUL .txt',
    ]) {
      assert.match(nameProblemsOn('win32', p) ?? '', /reserved device name/, p);
    }
  });

  it('accepts names that only look like Windows device names', () => {
    for (const p of ['CONSOLE', 'COM0', 'COM10', 'LPT', 'auxiliary.c', 'nul_/x', 'a/con_x']) {
      assert.equal(nameProblemsOn('win32', p), null, p);
    }
  });

  it('rejects a trailing dot or space on Windows, in any segment', () => {
    assert.match(nameProblemsOn('win32', 'file.') ?? '', /ends with a dot or space/);
    assert.match(nameProblemsOn('win32', 'dir /x') ?? '', /ends with a dot or space/);
  });

  it('rejects characters Windows forbids', () => {
    for (const ch of ['<', '>', ':', '"', '|', '?', '*']) {
      assert.match(nameProblemsOn('win32', `a/b${ch}c`) ?? '', /not allowed on Windows/, ch);
    }
  });
});

describe('findCaseClashes', () => {
  it('finds files equal ignoring case', () => {
    assert.deepEqual(findCaseClashes(['README', 'readme', 'other']), [['README', 'readme']]);
  });

  it('finds folders equal ignoring case, once', () => {
    assert.deepEqual(findCaseClashes(['Src/a.ts', 'src/b.ts', 'src/c.ts']), [['Src', 'src']]);
  });

  it('pairs every later spelling with the first one', () => {
    assert.deepEqual(findCaseClashes(['a/X', 'a/x', 'A/x']), [
      ['a/X', 'a/x'],
      ['a', 'A'],
    ]);
  });

  it('treats composed and decomposed accents as one name', () => {
    assert.deepEqual(findCaseClashes(['caf\u00e9', 'cafe\u0301']), [['caf\u00e9', 'cafe\u0301']]);
  });

  it('finds nothing in distinct paths or in an exact repeat', () => {
    assert.deepEqual(findCaseClashes(['a/b', 'a/c', 'b', 'a/b']), []);
  });
});

describe('isInsideWorkspace', () => {
  it('accepts targets that stay inside', () => {
    assert.equal(isInsideWorkspace('link', 'target'), true);
    assert.equal(isInsideWorkspace('a/b/link', '../../c'), true);
    assert.equal(isInsideWorkspace('a/link', './b/../c'), true);
    assert.equal(isInsideWorkspace('a/link', '.'), true);
    assert.equal(isInsideWorkspace('a/link', '..'), true);
  });

  it('refuses targets that climb out', () => {
    assert.equal(isInsideWorkspace('link', '..'), false);
    assert.equal(isInsideWorkspace('link', '../x'), false);
    assert.equal(isInsideWorkspace('a/b/link', '../../../x'), false);
  });

  it('refuses targets that leave and come back, since the root name is not known', () => {
    assert.equal(isInsideWorkspace('link', '../ws/x'), false);
  });

  it('refuses absolute targets of every platform', () => {
    for (const t of ['/etc/passwd', '/', 'C:\\x', 'c:/x', '\\\\server\\share', '\\x']) {
      assert.equal(isInsideWorkspace('link', t), false, t);
    }
  });

  it('refuses backslashes, empty targets and NUL', () => {
    assert.equal(isInsideWorkspace('a/link', '..\\..\\x'), false);
    assert.equal(isInsideWorkspace('a/link', 'b\\c'), false);
    assert.equal(isInsideWorkspace('link', ''), false);
    assert.equal(isInsideWorkspace('link', 'a\u0000b'), false);
  });

  it('refuses targets into .git', () => {
    assert.equal(isInsideWorkspace('link', '.git/config'), false);
    assert.equal(isInsideWorkspace('a/link', '../.GIT'), false);
  });

  it('follows other links of the workspace as the OS would', () => {
    // Lexically "a/../x" is inside, but a points at the root, so a/.. is its parent.
    const links = new Map([
      ['a', '.'],
      ['b', 'a/../x'],
    ]);
    assert.equal(isInsideWorkspace('a', '.', links), true);
    assert.equal(isInsideWorkspace('b', 'a/../x', links), false);
  });

  it('follows links among the link path folders', () => {
    const links = new Map([['d', 'deep/er']]);
    assert.equal(isInsideWorkspace('d/l', '../../x', links), true);
    assert.equal(isInsideWorkspace('d/l', '../../../x', links), false);
  });

  it('refuses link loops', () => {
    const links = new Map([
      ['p', 'q'],
      ['q', 'p'],
    ]);
    assert.equal(isInsideWorkspace('p', 'q', links), false);
    assert.equal(isInsideWorkspace('self', 'self', new Map([['self', 'self']])), false);
  });
});

describe('resolveLink and depthOf', () => {
  it('says where a link leads, through other links, and null when it leaves', () => {
    const links = new Map([['out/a/up', '../..']]);
    assert.equal(resolveLink('out/l', 'a/x', links), 'out/a/x');
    assert.equal(resolveLink('out/a/up', '../..', links), '');
    assert.equal(resolveLink('out/esc', 'a/up/../..', links), null);
    assert.equal(resolveLink('x', '.', links), '');
    assert.equal(depthOf(''), 0);
    assert.equal(depthOf('a/b'), 2);
  });

  it('asks a lookup function, as for links already on disk', () => {
    const asked: string[] = [];
    const lookup = (p: string): string | undefined => {
      asked.push(p);
      return p === 'a/b/c/d/up' ? '../../../..' : undefined;
    };
    assert.equal(isInsideWorkspace('f.tmp', 'a/b/c/d/up/../../../../../X', lookup), false);
    assert.ok(asked.includes('a/b/c/d/up'));
  });
});
