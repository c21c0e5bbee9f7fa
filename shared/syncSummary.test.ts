import assert from 'node:assert/strict';
import { syncSummary } from './syncSummary';

describe('sync summary line', () => {
  it('says what was sent, removed and kept, with thousands separated', () => {
    assert.equal(
      syncSummary({ filesSent: 3, bytesSent: 12 * 1024, removed: 1, kept: 9552 }),
      'sent 3 (12.0 KiB), removed 1, kept 9,552 built files',
    );
  });

  it('leaves out what is zero, but always says what was sent', () => {
    assert.equal(syncSummary({ filesSent: 0, bytesSent: 0, removed: 0, kept: 0 }), 'sent 0 (0 B)');
    assert.equal(
      syncSummary({ filesSent: 0, bytesSent: 0, removed: 0, kept: 1 }),
      'sent 0 (0 B), kept 1 built file',
    );
  });
});
