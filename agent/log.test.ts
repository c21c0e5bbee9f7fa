import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createStreamLogger, stderrWriter } from './log';

class FakeStream extends EventEmitter {
  destroyed = false;
  written: string[] = [];
  throwOnWrite = false;
  write(text: string): boolean {
    if (this.throwOnWrite) throw Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    this.written.push(text);
    return true;
  }
}

describe('agent log writer', () => {
  it('writes until the stream reports an error, then drops lines silently', () => {
    const s = new FakeStream();
    const write = stderrWriter(s);
    write('one\n');
    // Emitting 'error' with no listener would throw: the writer must have one.
    s.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    write('two\n');
    assert.deepEqual(s.written, ['one\n']);
  });

  it('survives a write that throws, and a destroyed stream', () => {
    const s = new FakeStream();
    const write = stderrWriter(s);
    s.throwOnWrite = true;
    assert.doesNotThrow(() => write('lost\n'));
    s.throwOnWrite = false;
    write('after\n');
    assert.deepEqual(s.written, [], 'a stream that threw once is not written again');
    const d = new FakeStream();
    d.destroyed = true;
    stderrWriter(d)('x\n');
    assert.deepEqual(d.written, []);
  });

  it('logs one JSON object a line', () => {
    const lines: string[] = [];
    const logger = createStreamLogger({
      level: 'info',
      pretty: false,
      write: (l) => lines.push(l),
    });
    logger.debug('hidden');
    logger.warn('careful', { port: 1 });
    assert.equal(lines.length, 1);
    const record = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    assert.equal(record.level, 'warn');
    assert.equal(record.msg, 'careful');
    assert.equal(record.port, 1);
  });
});
