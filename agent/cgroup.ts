import { randomBytes } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../shared/logger';

/**
 * A cgroup (v2) per task, when the agent has been given a cgroup folder of
 * its own: every process a task starts stays in its cgroup whatever it does
 * (setsid, a cleared environment, a double fork), so ending the cgroup ends
 * the task for sure. Where there is no such folder (no cgroup v2, or a
 * cgroup that belongs to someone else) it is off, and the process group and
 * the task marker do the job.
 */

/** One task's cgroup. */
export interface TaskCgroup {
  readonly path: string;
  /** Moves a process into it (the task's leader, right after it starts); false if that failed. */
  add(pid: number): boolean;
  /** SIGKILLs everything in it; returns how many processes were in it. */
  kill(): number;
  /** Removes the (emptied) folder; resolves false if it still held processes after a while. */
  remove(): Promise<boolean>;
}

export interface CgroupOptions {
  /**
   * A cgroup folder the user hands the agent (e.g. a systemd unit's with
   * Delegate=yes, run as root): used as is. Without it, the agent's own
   * cgroup is used only if it is delegated to the agent's user (see detect).
   */
  path?: string;
  /** Kill through cgroup.kill where the kernel has it (5.14+); false to signal each process. */
  useKillFile?: boolean;
  /** For tests: the text of /proc/self/cgroup and /proc/self/mountinfo. */
  selfCgroup?: string;
  mountinfo?: string;
}

/** The agent's cgroup v2 path (relative to the hierarchy's root), from /proc/self/cgroup. */
export function ownCgroupPath(selfCgroup: string): string | undefined {
  const line = selfCgroup.split('\n').find((l) => l.startsWith('0::'));
  return line?.slice(3).trim() || undefined;
}

/** Where the cgroup v2 hierarchy is mounted, and which of its folders the mount shows as its root. */
export function cgroup2Mount(mountinfo: string): { root: string; mountPoint: string } | undefined {
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    if (!before || !after || after.split(' ')[0] !== 'cgroup2') continue;
    const fields = before.split(' ');
    const root = fields[3];
    const mountPoint = fields[4];
    if (root && mountPoint) return { root: unescape(root), mountPoint: unescape(mountPoint) };
  }
  return undefined;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
const unescape = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Where task cgroups are made: one folder the agent may carve up. */
export class TaskCgroups {
  private constructor(
    readonly base: string,
    private readonly useKillFile: boolean,
  ) {}

  /**
   * The folder to make task cgroups in, or undefined (off). Auto-detected
   * only when the agent's own cgroup (never the hierarchy's root, which is
   * the machine's or the container's) is owned by the agent's user and that
   * user is not root: that is how systemd delegates (Delegate=yes with
   * User=, and every user's own manager). For root every folder is
   * writable and says nothing about whose it is, so root needs `path`. In
   * either case the agent must be able to make a folder there and to move
   * processes (write its cgroup.procs), checked by trying.
   */
  static detect(options: CgroupOptions = {}, logger?: Logger): TaskCgroups | undefined {
    const base = options.path ?? ownFolder(options);
    if (!base) return undefined;
    const probe = join(base, `octask-probe-${randomBytes(4).toString('hex')}`);
    try {
      accessSync(join(base, 'cgroup.procs'), constants.W_OK);
      mkdirSync(probe);
      rmdirSync(probe);
    } catch (err) {
      if (options.path) logger?.warn('cannot use the cgroup given', { path: base, err });
      return undefined;
    }
    return new TaskCgroups(base, options.useKillFile ?? true);
  }

  /** A new, empty cgroup for the task, or undefined if one cannot be made (limits, permissions). */
  createTaskCgroup(task: string, logger?: Logger): TaskCgroup | undefined {
    const name = `task-${task.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 48)}-${randomBytes(4).toString('hex')}`;
    const path = join(this.base, name);
    try {
      mkdirSync(path);
    } catch (err) {
      logger?.warn('cannot make a cgroup for the task', { task, path, err });
      return undefined;
    }
    return new OneTaskCgroup(path, this.useKillFile && existsSync(join(path, 'cgroup.kill')));
  }
}

function ownFolder(options: CgroupOptions): string | undefined {
  let selfCgroup: string;
  let mountinfo: string;
  try {
    selfCgroup = options.selfCgroup ?? readFileSync('/proc/self/cgroup', 'utf8');
    mountinfo = options.mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined; // no /proc: not Linux
  }
  const own = ownCgroupPath(selfCgroup);
  const mount = cgroup2Mount(mountinfo);
  if (!own || own === '/' || !mount) return undefined;
  const rootPrefix = mount.root === '/' ? '' : mount.root;
  if (rootPrefix && !own.startsWith(`${rootPrefix}/`)) return undefined;
  const folder = join(mount.mountPoint, own.slice(rootPrefix.length));
  const uid = process.getuid?.();
  try {
    if (uid === undefined || uid === 0 || statSync(folder).uid !== uid) return undefined;
  } catch {
    return undefined;
  }
  return folder;
}

class OneTaskCgroup implements TaskCgroup {
  constructor(
    readonly path: string,
    private readonly killFile: boolean,
  ) {}

  add(pid: number): boolean {
    try {
      writeFileSync(join(this.path, 'cgroup.procs'), String(pid));
      return true;
    } catch {
      return false; // ESRCH: it has exited already
    }
  }

  kill(): number {
    const before = this.procs();
    if (this.killFile) {
      try {
        writeFileSync(join(this.path, 'cgroup.kill'), '1');
        return before.length;
      } catch {
        // Fall through to signalling each process.
      }
    }
    // Without cgroup.kill, a process may fork between reading the list and
    // the signal: go round until the list is empty (a fork bomb may outrun a
    // few rounds; cgroup.kill cannot be outrun).
    const seen = new Set<number>();
    for (let round = 0, pids = before; round < 10 && pids.length > 0; round++) {
      for (const pid of pids) {
        seen.add(pid);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // ESRCH: already gone.
        }
      }
      pids = this.procs();
    }
    return seen.size;
  }

  async remove(): Promise<boolean> {
    const end = Date.now() + 2000;
    for (;;) {
      try {
        rmdirSync(this.path);
        return true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return true;
        // EBUSY: killed processes take a moment to leave.
        if (code !== 'EBUSY' || Date.now() > end) return false;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private procs(): number[] {
    try {
      return readFileSync(join(this.path, 'cgroup.procs'), 'latin1')
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      return [];
    }
  }
}
