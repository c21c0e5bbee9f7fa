import { existsSync } from 'node:fs';

/** How to run a command line with a shell on this platform. */
export interface ShellCommand {
  file: string;
  args: string[];
}

/**
 * The shell per platform: Termux keeps its own under $PREFIX, Android has no
 * /bin/sh, Windows has cmd.exe. `override` is the user's --shell.
 */
export function defaultShell(
  env: NodeJS.ProcessEnv = process.env,
  platform: string = process.platform,
): string {
  if (env.PREFIX && env.PREFIX.includes('com.termux') && existsSync(`${env.PREFIX}/bin/sh`)) {
    return `${env.PREFIX}/bin/sh`;
  }
  if (platform === 'android') return '/system/bin/sh';
  if (platform === 'win32') return env.ComSpec || 'cmd.exe';
  return '/bin/sh';
}

export function shellInvocation(shell: string, command: string): ShellCommand {
  if (/cmd(\.exe)?$/i.test(shell)) return { file: shell, args: ['/d', '/s', '/c', command] };
  return { file: shell, args: ['-c', command] };
}
