import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../shared/logger';
import { createAuditLog, MAX_AUDIT_FIELD } from './audit';

describe('audit log', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'octask-audit-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('cuts a refused 4 MiB command to a line of sane length, saying how long it was', async () => {
    const path = join(dir, 'audit.jsonl');
    const audit = createAuditLog(path, silentLogger);
    const command = 'x'.repeat(4 * 1024 * 1024);
    audit.write({
      peer: '127.0.0.1:1',
      dispatcher: 'd',
      task: 't',
      command,
      outcome: 'refused',
      reason: `refused: ${'y'.repeat(100_000)}`,
    });
    audit.write({
      peer: 'p',
      dispatcher: 'd',
      task: 't2',
      command: 'echo hi',
      outcome: 'completed',
    });
    await audit.close();
    const text = readFileSync(path, 'utf8');
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.ok(text.length < 3 * MAX_AUDIT_FIELD, `the audit file holds ${text.length} bytes`);
    const first = JSON.parse(lines[0] as string) as { command: string; reason: string };
    assert.ok(first.command.startsWith('xxxx'));
    assert.match(first.command, /… \(4194304 characters in all\)$/);
    assert.match(first.reason, /characters in all\)$/);
    const second = JSON.parse(lines[1] as string) as { command: string; reason?: string };
    assert.equal(second.command, 'echo hi');
    assert.equal(second.reason, undefined);
  });
});
