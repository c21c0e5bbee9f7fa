import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { OutputPrinter } from './outputPrinter';

function sink(): { stream: PassThrough; text(): string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

describe('output printer', () => {
  it("passes one task's bytes through untouched", () => {
    const out = sink();
    const err = sink();
    const p = new OutputPrinter(out.stream, err.stream, null);
    p.write('t', 'stdout', Buffer.from('no newline'));
    p.write('t', 'stderr', Buffer.from('e\n'));
    assert.equal(out.text(), 'no newline');
    assert.equal(err.text(), 'e\n');
  });

  it('prefixes whole lines per task and keeps partial lines until they end', () => {
    const out = sink();
    const p = new OutputPrinter(out.stream, sink().stream, (id) =>
      id === 'a' ? 'pi#0' : 'desk#1',
    );
    p.write('a', 'stdout', Buffer.from('one\ntw'));
    p.write('b', 'stdout', Buffer.from('B1\n'));
    p.write('a', 'stdout', Buffer.from('o\nthree'));
    p.flush('a');
    assert.equal(out.text(), '[pi#0] one\n[desk#1] B1\n[pi#0] two\n[pi#0] three\n');
  });

  it('does not split a UTF-8 character across chunks', () => {
    const out = sink();
    const p = new OutputPrinter(out.stream, sink().stream, () => 'x');
    const bytes = Buffer.from('héllo\n');
    p.write('a', 'stdout', bytes.subarray(0, 2));
    p.write('a', 'stdout', bytes.subarray(2));
    assert.equal(out.text(), '[x] héllo\n');
  });
});
