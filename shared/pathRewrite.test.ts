import assert from 'node:assert/strict';
import { PathRewriter } from './pathRewrite';

function run(chunks: string[], agentRoot = '/agent/ws/abc', localRoot = '/home/me/proj'): string {
  const r = new PathRewriter(agentRoot, localRoot);
  return chunks.map((c) => r.write(c)).join('') + r.flush();
}

describe('PathRewriter', () => {
  it('rewrites the agent root to the local root', () => {
    assert.equal(
      run(['/agent/ws/abc/src/a.c:3:1: error: x\n']),
      '/home/me/proj/src/a.c:3:1: error: x\n',
    );
  });

  it('rewrites a root split across chunks, at every split point', () => {
    const line = 'in /agent/ws/abc/src/a.ts(1,2): error TS1\nnext /agent/ws/abc\n';
    const want = 'in /home/me/proj/src/a.ts(1,2): error TS1\nnext /home/me/proj\n';
    for (let i = 0; i <= line.length; i++) {
      for (let j = i; j <= line.length; j += 7) {
        assert.equal(run([line.slice(0, i), line.slice(i, j), line.slice(j)]), want, `${i},${j}`);
      }
    }
  });

  it('leaves a longer path component alone', () => {
    assert.equal(run(['/agent/ws/abcd/x\n']), '/agent/ws/abcd/x\n');
  });

  it('passes text through unchanged when nothing matches, holding back only a possible prefix', () => {
    const r = new PathRewriter('/agent/ws/abc', '/l');
    assert.equal(r.write('hello /ag'), 'hello ');
    assert.equal(r.write('ain'), '/again');
    assert.equal(r.flush(), '');
  });
});
