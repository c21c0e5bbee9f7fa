import assert from 'node:assert/strict';
import { labelAgents } from './agentLabels';

describe('agent labels', () => {
  it('keeps unique names, numbers repeated ones by id, and gives twins one label', () => {
    const labels = labelAgents([
      { key: '10.0.0.2:7879', name: 'phone', id: 'bbb' },
      { key: '10.0.0.3:7879', name: 'phone', id: 'aaa' },
      { key: 'phone.local:7879', name: 'phone', id: 'aaa' },
      { key: '10.0.0.4:7879', name: 'pi', id: 'ccc' },
    ]);
    assert.equal(labels.get('10.0.0.3:7879'), 'phone');
    assert.equal(labels.get('phone.local:7879'), 'phone');
    assert.equal(labels.get('10.0.0.2:7879'), 'phone (2)');
    assert.equal(labels.get('10.0.0.4:7879'), 'pi');
  });
});
