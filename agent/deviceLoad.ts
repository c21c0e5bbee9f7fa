import { readdirSync, readFileSync } from 'node:fs';
import { freemem, loadavg } from 'node:os';
import { join } from 'node:path';
import type { Battery } from '../shared/protocol';

/**
 * What the device says of its load: load average, free memory, and the
 * battery where Linux or Android expose one in sysfs (`power_supply`).
 * `sysfsRoot` is `/sys` except in tests (OCTASK_SYSFS_ROOT), which lay out
 * a fake `class/power_supply` folder.
 */
export interface DeviceLoad {
  loadAvg: number;
  freeMemory: number;
  battery: Battery | null;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/** The first battery in sysfs, with whether anything is charging it; null where there is none. */
export function readBattery(sysfsRoot = '/sys'): Battery | null {
  const dir = join(sysfsRoot, 'class', 'power_supply');
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return null;
  }
  let battery: Battery | null = null;
  let external = false;
  for (const name of names) {
    const type = readText(join(dir, name, 'type'));
    if (type === 'Battery' && battery === null) {
      const level = Number(readText(join(dir, name, 'capacity')));
      if (!Number.isFinite(level)) continue;
      const status = readText(join(dir, name, 'status')) ?? '';
      battery = {
        level: Math.max(0, Math.min(100, Math.round(level))),
        // "Full" and "Not charging" (held at a limit) are on a charger too.
        charging: status === 'Charging' || status === 'Full' || status === 'Not charging',
      };
    } else if (type === 'Mains' || type === 'USB' || type === 'USB_C') {
      if (readText(join(dir, name, 'online')) === '1') external = true;
    }
  }
  if (battery && external) battery.charging = true;
  return battery;
}

export function readDeviceLoad(sysfsRoot?: string): DeviceLoad {
  return {
    loadAvg: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    freeMemory: freemem(),
    battery: readBattery(sysfsRoot),
  };
}

/** Whether the agent should rest: on battery, discharging, below the floor (0 turns it off). */
export function shouldRest(battery: Battery | null, floorPct: number): boolean {
  return battery !== null && floorPct > 0 && !battery.charging && battery.level < floorPct;
}
