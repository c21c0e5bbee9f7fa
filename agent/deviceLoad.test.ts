import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBattery, readDeviceLoad, shouldRest } from './deviceLoad';

function supply(root: string, name: string, files: Record<string, string>): void {
  const dir = join(root, 'class', 'power_supply', name);
  mkdirSync(dir, { recursive: true });
  for (const [f, v] of Object.entries(files)) writeFileSync(join(dir, f), `${v}\n`);
}

describe('device load', () => {
  let root: string;
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), 'octask-sysfs-'))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('reads a battery and whether it charges, from sysfs', () => {
    assert.equal(readBattery(root), null);
    supply(root, 'BAT0', { type: 'Battery', capacity: '18', status: 'Discharging' });
    assert.deepEqual(readBattery(root), { level: 18, charging: false });
    supply(root, 'AC', { type: 'Mains', online: '1' });
    assert.deepEqual(readBattery(root), { level: 18, charging: true });
  });

  it('rests only on battery, discharging, below the floor', () => {
    assert.equal(shouldRest(null, 20), false);
    assert.equal(shouldRest({ level: 18, charging: false }, 20), true);
    assert.equal(shouldRest({ level: 18, charging: true }, 20), false);
    assert.equal(shouldRest({ level: 25, charging: false }, 20), false);
    assert.equal(shouldRest({ level: 5, charging: false }, 0), false);
  });

  it('reports load average and free memory', () => {
    const load = readDeviceLoad(root);
    assert.ok(load.freeMemory > 0);
    assert.ok(load.loadAvg >= 0);
    assert.equal(load.battery, null);
  });
});
