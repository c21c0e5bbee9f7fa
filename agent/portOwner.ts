import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/*
 * Who holds a TCP port, for the one line the agent prints when it cannot
 * listen. Linux (and Android) only, from /proc; elsewhere, or when /proc
 * hides other users' processes, the answer is simply unknown.
 */

const LISTEN = '0A';

/** Socket inodes listening on `port`, from the text of /proc/net/tcp or tcp6. */
export function listeningInodes(procNetTcp: string, port: number): string[] {
  const inodes: string[] = [];
  for (const line of procNetTcp.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (!local || fields[3] !== LISTEN) continue;
    const hexPort = local.slice(local.lastIndexOf(':') + 1);
    if (parseInt(hexPort, 16) === port && fields[9] && fields[9] !== '0') inodes.push(fields[9]);
  }
  return inodes;
}

export interface PortOwner {
  pid: number;
  /** The owner's command line, arguments joined by spaces. */
  command: string;
}

/** The process listening on `port`, if /proc says; undefined when it cannot tell. */
export function findPortOwner(port: number, proc = '/proc'): PortOwner | undefined {
  const inodes = new Set<string>();
  for (const table of ['net/tcp', 'net/tcp6']) {
    try {
      for (const i of listeningInodes(readFileSync(join(proc, table), 'utf8'), port))
        inodes.add(`socket:[${i}]`);
    } catch {
      // no such table (no IPv6, or not Linux)
    }
  }
  if (inodes.size === 0) return undefined;
  let pids: string[];
  try {
    pids = readdirSync(proc).filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(join(proc, pid, 'fd'));
    } catch {
      continue; // gone, or another user's
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(join(proc, pid, 'fd', fd));
      } catch {
        continue;
      }
      if (inodes.has(link)) return { pid: Number(pid), command: commandLine(proc, pid) };
    }
  }
  return undefined;
}

function commandLine(proc: string, pid: string): string {
  try {
    return readFileSync(join(proc, pid, 'cmdline'), 'utf8')
      .split('\0')
      .join(' ')
      .trim();
  } catch {
    return '';
  }
}

/** The one line for a port that is taken, naming the holder when known. */
export function portTakenMessage(port: number, owner: PortOwner | undefined): string {
  if (!owner)
    return `port ${port} is taken, probably by another octask-agent: stop it or use --port`;
  if (owner.command === '' || /octask/.test(owner.command))
    return `port ${port} is taken, probably by another octask-agent (pid ${owner.pid}): stop it or use --port`;
  const program = owner.command.split(' ')[0]?.split('/').pop() ?? owner.command;
  return `port ${port} is taken by ${program} (pid ${owner.pid}): stop it or use --port`;
}
