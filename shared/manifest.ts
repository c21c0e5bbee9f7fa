/**
 * The manifest of a workspace: what the dispatcher sends so the agent can lay
 * out a copy from its content store. Types only; both sides use them.
 *
 * Every `path` is workspace-relative, `/`-separated and accepted by
 * `checkRelativePath` (shared/workspacePath.ts); entries are sorted by path
 * (plain UTF-16 code-unit order, as `a < b` compares) and no path repeats.
 */

/** A regular file, named by its content. */
export interface ManifestFile {
  path: string;
  /** Length in bytes. */
  size: number;
  /**
   * Permission bits (`st_mode & 0o777`); the agent keeps at least the
   * executable bits. Setuid, setgid and sticky bits never travel.
   */
  mode: number;
  /** SHA-256 of the content, 64 lowercase hex digits. */
  hash: string;
}

/**
 * A symbolic link, sent as its target text. Only links whose target resolves
 * inside the workspace (`isInsideWorkspace`) are ever entries.
 */
export interface ManifestLink {
  path: string;
  /** The link's content, relative, `/`-separated; never absolute. */
  link: string;
}

/** One entry of a manifest; `'link' in entry` tells the two kinds apart. */
export type ManifestEntry = ManifestFile | ManifestLink;

/** A path left out of a manifest, with a reason fit to show a user. */
export interface ManifestProblem {
  path: string;
  reason: string;
}
