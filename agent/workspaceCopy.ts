import { createHash } from 'node:crypto';
import {
  chmodSync,
  constants as fsConstants,
  copyFileSync,
  createReadStream,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, mkdir, readdir, rm, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ConfinedTree, linkOnDisk } from '../shared/confinedFs';
import { ErrorCode, OctaskError } from '../shared/errors';
import { matchesAnyGlob } from '../shared/glob';
import type { ManifestEntry, ManifestFile } from '../shared/manifest';
import { manifestDigest } from '../shared/manifestDigest';
import type { TargetPlatform } from '../shared/workspacePath';
import {
  checkRelativePath,
  findCaseClashes,
  isInsideWorkspace,
  nameProblemsOn,
} from '../shared/workspacePath';
import { BlobStaging } from './blobStaging';
import { countMade, tidyCopy } from './copyTidy';
import { CopyWatch } from './copyWatch';

/** How long after a layout its state.json is written (see saveRecord). */
const RECORD_DELAY_MS = 500;

/** What the agent laid out last time, per path: so an unchanged file is not written again. */
interface LaidOut {
  hash: string;
  mode: number;
  size: number;
  mtimeMs: number;
}

type State = Record<string, LaidOut | { link: string }>;

/** A copy's last layout: kept in state.json beside it, and in memory once read. */
interface CopyRecord {
  /** manifestDigest of the entries laid out (absent in a state.json of before protocol 3). */
  digest?: string;
  files: State;
  /** CopyUsers.changes when the files were last seen as laid out: until it moves, no task touched them. */
  verifiedAt?: number;
  /** Files and links the tasks made, counted at CopyUsers.changes `at`. */
  made?: { count: number; at: number };
  /** Tells whether a task touched a file of the layout since it was last seen (absent: stat them). */
  watch?: CopyWatch;
  /** Made by a layout of this process from a validated manifest (not read back from state.json). */
  checked?: boolean;
  /** The manifest laid out, in its order: kept in memory only, as the base of a later sync's delta. */
  entries?: readonly ManifestEntry[];
}

/** What the layout of a manifest needs, worked out from the copy as it is. */
export interface SyncPlan {
  /** Contents found nowhere in the copy, with their sizes: the dispatcher sends these. */
  need: Map<string, number>;
  /** Contents found unchanged at another path of the copy (a file renamed or duplicated). */
  local: Map<string, string>;
  /**
   * Listed files not in place (new, or not the same content, mode or, on
   * disk, as laid out); every other listed file is. The few, not the many:
   * most syncs change a handful of a copy's files.
   */
  changed: Set<string>;
  /** Listed files in place. */
  inPlace: number;
  /** The record it was made from: a layout since (another dispatcher's) makes it stale. */
  basis: object;
}

/** How long a layout works between yields to the event loop, so other connections are served. */
const SLICE_MS = 15;

const WORKSPACE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Beside each copy: the setup commands that ran in it, and for which key (agent/setupSteps.ts). */
export const SETUP_RECORD = 'setup.json';
const STATE_RECORD = 'state.json';

function sameAsLaidOut(st: Stats | undefined, was: LaidOut): boolean {
  return st !== undefined && st.isFile() && st.size === was.size && st.mtimeMs === was.mtimeMs;
}

/**
 * The agent's copies of dispatchers' workspaces, under `root/NAME/tree`.
 * They are the only place synced contents live: a sync stages what the copy
 * lacks beside it and renames it into place, and a content already in the
 * copy (at its path, or at another) is never sent again. Every path is
 * checked before anything is written; nothing is written outside the copy,
 * and never through a symlink.
 */
export class WorkspaceCopies {
  private readonly records = new Map<string, CopyRecord>();
  /** Records laid out and not yet written to their state.json (saveRecord), by workspace. */
  private readonly unsaved = new Map<string, { write: () => void; timer: NodeJS.Timeout }>();

  constructor(
    private readonly root: string,
    private readonly platform: TargetPlatform = targetPlatform(),
  ) {}

  /** The folder of a workspace copy; throws on a name that could escape `root`. */
  dirOf(workspace: string): string {
    return join(this.folderOf(workspace), 'tree');
  }

  /** The copy's own folder (`root/NAME`): its tree, its records, its staged contents. */
  folderOf(workspace: string): string {
    if (!WORKSPACE_NAME.test(workspace) || workspace.startsWith('.')) {
      throw new OctaskError(
        ErrorCode.BadPath,
        `not a workspace name: ${JSON.stringify(workspace.slice(0, 80))}`,
      );
    }
    return join(this.root, workspace);
  }

  /** Whether the copy of `workspace` has a tree on disk (else its first layout makes one whole). */
  hasTree(workspace: string): boolean {
    return existsSync(this.dirOf(workspace));
  }

  /** A place to stage the contents one sync of `workspace` brings. */
  staging(workspace: string): BlobStaging {
    return new BlobStaging(this.folderOf(workspace));
  }

  /**
   * Removes copies not synced for `maxAgeMs` (every run syncs first, so this
   * is also their last use), and what syncs cut short by an earlier life of
   * the agent left staged; returns the names of the copies removed.
   */
  async removeStale(maxAgeMs: number, now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for (const entry of await readdir(this.root, { withFileTypes: true }).catch(() => [])) {
      if (!entry.isDirectory() || !WORKSPACE_NAME.test(entry.name)) continue;
      const folder = join(this.root, entry.name);
      const st = await lstat(join(folder, STATE_RECORD)).catch(() => lstat(folder));
      if (now - st.mtimeMs <= maxAgeMs) {
        if (!this.records.has(entry.name)) BlobStaging.removeLeftovers(folder);
        continue;
      }
      this.records.get(entry.name)?.watch?.close();
      this.records.delete(entry.name);
      await rm(folder, { recursive: true, force: true });
      removed.push(entry.name);
    }
    return removed;
  }

  /**
   * The checks a path passes before anything is written at it: a streamed
   * sync's parts pass them before their contents arrive; the rest of
   * `validate` waits for the whole manifest.
   */
  checkPaths(entries: readonly ManifestEntry[]): void {
    for (const e of entries) {
      const bad = checkRelativePath(e.path) ?? nameProblemsOn(this.platform, e.path);
      if (bad)
        throw new OctaskError(ErrorCode.BadPath, `${JSON.stringify(e.path.slice(0, 200))}: ${bad}`);
    }
  }

  /**
   * Checks a whole manifest; the first problem is thrown as E_BAD_PATH,
   * naming the path. `pathsChecked`: every path passed `checkPaths` already
   * (a streamed sync's parts did), so only how they fit together is left.
   */
  validate(entries: readonly ManifestEntry[], workspace?: string, pathsChecked = false): void {
    const seen = new Set<string>();
    const links = new Map<string, string>();
    for (const e of entries) if ('link' in e) links.set(e.path, e.link);
    // A path that a layout of this agent process laid out passed these
    // checks then (a record read back from state.json, which a task could
    // have written, is trusted for nothing): only what is new is checked.
    const record = workspace === undefined ? undefined : this.record(workspace);
    const known: State = record?.checked ? record.files : {};
    let unknown = 0;
    // Dispatchers send paths in code-unit order, which alone shows none is
    // listed twice; only another order needs the set.
    let sorted = true;
    for (let i = 1; i < entries.length && sorted; i++)
      sorted = (entries[i - 1] as ManifestEntry).path < (entries[i] as ManifestEntry).path;
    for (const e of entries) {
      const isKnown = Object.hasOwn(known, e.path);
      if (!isKnown) unknown++;
      const bad =
        isKnown || pathsChecked
          ? undefined
          : (checkRelativePath(e.path) ?? nameProblemsOn(this.platform, e.path));
      if (bad)
        throw new OctaskError(ErrorCode.BadPath, `${JSON.stringify(e.path.slice(0, 200))}: ${bad}`);
      if (!sorted) {
        if (seen.has(e.path)) throw new OctaskError(ErrorCode.BadPath, `${e.path}: listed twice`);
        seen.add(e.path);
      }
      if ('link' in e && !isInsideWorkspace(e.path, e.link, links)) {
        throw new OctaskError(
          ErrorCode.BadPath,
          `${e.path}: symlink to ${JSON.stringify(e.link)} leads outside the workspace`,
        );
      }
    }
    // A path below another entry would be written through it (a file or a
    // symlink as a folder). Paths all from one checked layout cannot be.
    const paths = unknown > 0 && sorted ? new Set(entries.map((e) => e.path)) : seen;
    for (const e of unknown === 0 ? [] : entries) {
      for (let i = e.path.indexOf('/'); i !== -1; i = e.path.indexOf('/', i + 1)) {
        if (paths.has(e.path.slice(0, i))) {
          throw new OctaskError(
            ErrorCode.BadPath,
            `${e.path}: lies below ${e.path.slice(0, i)}, which is not a folder`,
          );
        }
      }
    }
    if (this.platform === 'darwin' || this.platform === 'win32') {
      const clash = findCaseClashes(entries.map((e) => e.path))[0];
      if (clash)
        throw new OctaskError(
          ErrorCode.BadPath,
          `${clash[0]} and ${clash[1]} differ only in case, which this file system cannot hold apart`,
        );
    }
  }

  /**
   * Whether the copy is laid out from the manifest `digest` and its files
   * are as that layout left them. They are stat'ed only when the copy's
   * watch saw one of them touched, or, with no watch, when a task started or
   * ended in the copy since they were last seen so (`changes`, from
   * CopyUsers), or one runs in it now.
   */
  async check(
    workspace: string,
    digest: string,
    use: { changes: number; busy: boolean },
  ): Promise<{ kept?: number } | undefined> {
    const record = this.record(workspace);
    if (record.digest !== digest) return undefined;
    // No task started or ended in the copy since its files were seen as laid out.
    const quiet = record.verifiedAt === use.changes && !use.busy;
    if (!quiet || record.watch) {
      await deliverEvents();
      if (this.records.get(workspace) !== record || record.digest !== digest) return undefined;
      // A watch, where there is one, also sees a change made outside any task.
      if (use.busy || !(record.watch ? record.watch.clean : quiet)) {
        // Reset first: a write during or after the stats still counts.
        record.watch?.reset();
        if (!this.filesAsLaidOut(workspace, record.files)) {
          // Changed: the watch must not vouch for these files until a layout.
          record.watch?.markTouched();
          return undefined;
        }
        record.watch ??= CopyWatch.start(this.dirOf(workspace), Object.keys(record.files));
      }
      if (!use.busy) record.verifiedAt = use.changes;
    }
    // The state file's age is the copy's last use (removeStale).
    const now = new Date();
    utimes(this.recordPath(workspace, STATE_RECORD), now, now).catch(() => undefined);
    return record.made?.at === use.changes ? { kept: record.made.count } : {};
  }

  /**
   * Counts what the tasks made in the copy once they all ended, off the
   * path of the next sync, so a sync that changes nothing can still say
   * how many built files it kept. `changes` is CopyUsers' count now; the
   * count is dropped if it moves before the walk is done.
   */
  async countMade(workspace: string, changes: () => number): Promise<void> {
    const record = this.record(workspace);
    if (record.digest === undefined) return;
    const at = changes();
    const count = await countMade(
      this.dirOf(workspace),
      new Set(Object.keys(record.files)),
      () => changes() === at && this.records.get(workspace) === record,
    );
    if (count !== undefined) record.made = { count, at };
  }

  /**
   * The manifest of the copy's last layout and its digest, when this agent
   * process laid it out (a sync may then send only what differs from it);
   * undefined after a restart, when only state.json is left.
   */
  lastLayout(workspace: string): { digest: string; entries: readonly ManifestEntry[] } | undefined {
    const { digest, entries, checked } = this.record(workspace);
    return checked && digest !== undefined && entries ? { digest, entries } : undefined;
  }

  /** Whether the copy's last layout was of exactly these entries (what tasks did since is not looked at). */
  matches(workspace: string, entries: readonly ManifestEntry[]): boolean {
    return this.matchesDigest(workspace, manifestDigest(entries));
  }

  /** matches(), given the entries' manifestDigest (the record stores it). */
  matchesDigest(workspace: string, digest: string): boolean {
    return this.record(workspace).digest === digest;
  }

  /**
   * Whether the copy's watch vouches that no file of its last layout was
   * touched: as check() does, after a turn of the loop delivers the
   * watch's events; never while a task runs in the copy.
   */
  async untouched(workspace: string, busy: boolean): Promise<boolean> {
    if (busy) return false;
    const record = this.record(workspace);
    if (!record.watch) return false;
    await deliverEvents();
    return this.records.get(workspace) === record && record.watch.clean;
  }

  /**
   * What laying out `entries` needs: which listed files are already in
   * place, which contents can be taken from elsewhere in the copy, and
   * which must be sent. Reads metadata only.
   */
  plan(
    workspace: string,
    entries: readonly ManifestEntry[],
    /** The copy's watch saw none of its files touched (see untouched()): they need no stat. */
    untouched = false,
  ): SyncPlan {
    const record = this.record(workspace);
    const { files: before } = record;
    const dir = this.dirOf(workspace);
    // Plain paths, not a ConfinedTree: this only reads metadata, and a stat
    // through a link a task put in the copy can at worst make a file look
    // changed. Every write of the layout goes through the confined tree.
    const intact = (path: string, was: LaidOut): boolean =>
      untouched || sameAsLaidOut(lstatSync(join(dir, path), { throwIfNoEntry: false }), was);
    const plan: SyncPlan = {
      need: new Map(),
      local: new Map(),
      changed: new Set(),
      inPlace: 0,
      basis: record,
    };
    // Most entries are as laid out: settled in one pass over the manifest.
    const rest: ManifestFile[] = [];
    for (const e of entries) {
      if ('link' in e) continue;
      const was = before[e.path];
      if (was && 'hash' in was && was.hash === e.hash && was.mode === e.mode && intact(e.path, was))
        plan.inPlace++;
      else {
        plan.changed.add(e.path);
        rest.push(e);
      }
    }
    if (rest.length === 0) return plan;
    // The rest may be in the copy at another path (renamed, copied): looked up by content.
    const wanted = new Set(rest.map((e) => e.hash));
    const byHash = new Map<string, string[]>();
    for (const path in before) {
      const was = before[path];
      if (!was || !('hash' in was) || !wanted.has(was.hash)) continue;
      const paths = byHash.get(was.hash);
      if (paths) paths.push(path);
      else byHash.set(was.hash, [path]);
    }
    for (const e of rest) {
      if (plan.need.has(e.hash) || plan.local.has(e.hash)) continue;
      const at = byHash.get(e.hash)?.find((path) => {
        const was = before[path];
        return was !== undefined && 'hash' in was && intact(path, was);
      });
      if (at !== undefined) plan.local.set(e.hash, at);
      else plan.need.set(e.hash, e.size);
    }
    return plan;
  }

  /**
   * Makes the copy match the manifest as a checkout would: moves in what
   * changed (from `staging`, or copied from elsewhere in the copy), removes
   * what came from the workspace and left it, and keeps what tasks made
   * (all of it unless `clean`; what matches a `preserve` glob always).
   * Every change goes through a ConfinedTree, so no symlink in the copy
   * (one a task made, even while this runs) is ever followed. `plan` is
   * the one the sync asked with; it is made again when the copy may have
   * changed since (`changes` moved).
   */
  async layOut(
    workspace: string,
    entries: readonly ManifestEntry[],
    preserve: readonly string[],
    options: {
      validated?: boolean;
      clean?: boolean;
      staging?: BlobStaging;
      plan?: { plan: SyncPlan; changes: number };
      changes?: number;
      /** The entries' manifestDigest, when the caller has it already. */
      digest?: string;
    } = {},
  ): Promise<{ written: number; removed: number; kept?: number }> {
    if (!options.validated) this.validate(entries);
    const dir = this.dirOf(workspace);
    if (options.staging?.placed && !existsSync(dir))
      return this.layOutFresh(workspace, entries, options.staging, {
        digest: options.digest,
        changes: options.changes,
      });
    await mkdir(dir, { recursive: true });
    this.checkLinksAgainstCopy(dir, entries);
    // Made again when a task ran in the copy since, or another sync laid it out.
    const fresh =
      options.plan &&
      options.changes !== undefined &&
      options.plan.changes === options.changes &&
      options.plan.plan.basis === this.record(workspace);
    const plan = fresh && options.plan ? options.plan.plan : this.plan(workspace, entries);
    const staging = options.staging ?? this.staging(workspace);
    const tree = new ConfinedTree(dir, { replaceNonFolders: true });
    try {
      // A fresh copy has lost what setup commands made: they run again.
      if (options.clean) await rm(this.recordPath(workspace, SETUP_RECORD), { force: true });
      this.stageFromCopy(tree, plan, staging);
      const had = this.record(workspace).made;
      const changes = options.changes;
      const result = await this.layOutIn(tree, entries, preserve, options.clean ?? false, {
        before: this.record(workspace).files,
        plan,
        staging,
        keptKnown: changes !== undefined && had?.at === changes,
      });
      const kept =
        result.kept ?? (changes !== undefined && had?.at === changes ? had.count : undefined);
      this.saveRecord(
        workspace,
        {
          digest: options.digest ?? manifestDigest(entries),
          files: result.after,
          entries,
          ...(changes !== undefined ? { verifiedAt: changes } : {}),
          ...(changes !== undefined && kept !== undefined
            ? { made: { count: kept, at: changes } }
            : {}),
        },
        result.changed,
      );
      return { written: result.written, removed: result.removed, kept };
    } finally {
      tree.close();
      staging.discard();
    }
  }

  /**
   * The first layout of a copy whose contents were staged at their paths
   * (BlobStaging.placeAt): the rest of the tree (a content's further paths,
   * links) is made in the staging tree too, by folders this staging made
   * itself, and the whole tree is renamed into place. One rename instead of
   * one a file; nothing in the copy's folder exists yet to be followed.
   */
  private async layOutFresh(
    workspace: string,
    entries: readonly ManifestEntry[],
    staging: BlobStaging,
    known: { digest?: string; changes?: number },
  ): Promise<{ written: number; removed: number; kept: number }> {
    const dir = this.dirOf(workspace);
    const tree = staging.treeDir;
    const after: State = {};
    try {
      // Whatever setup commands made went with the old tree, if there was one: they run again.
      await rm(this.recordPath(workspace, SETUP_RECORD), { force: true });
      staging.folder('');
      let slice = performance.now();
      for (const e of entries) {
        const at = staging.inTree(e.path);
        if ('link' in e) {
          staging.foldersAbove(e.path);
          symlinkSync(e.link, at);
          after[e.path] = { link: e.link };
          continue;
        }
        let stamp = staging.stampOf(e.hash);
        if (!stamp)
          throw new OctaskError(ErrorCode.BadContent, `${e.path}: its content was not staged`);
        if (staging.placeOf(e.hash) !== e.path) {
          // A further path of a content: a file of its own, copied beside the first.
          staging.foldersAbove(e.path);
          copyFileSync(staging.pathOf(e.hash), at, fsConstants.COPYFILE_EXCL);
          const st = lstatSync(at);
          stamp = { size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o777 };
        }
        if (stamp.mode !== e.mode) {
          chmodSync(at, e.mode);
          stamp = { ...stamp, mode: e.mode };
        }
        after[e.path] = { hash: e.hash, mode: e.mode, size: stamp.size, mtimeMs: stamp.mtimeMs };
        if (performance.now() - slice > SLICE_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          slice = performance.now();
        }
      }
      renameSync(tree, dir);
    } finally {
      staging.discard();
    }
    const { changes } = known;
    this.saveRecord(
      workspace,
      {
        digest: known.digest ?? manifestDigest(entries),
        files: after,
        entries,
        ...(changes !== undefined ? { verifiedAt: changes, made: { count: 0, at: changes } } : {}),
      },
      true,
    );
    return { written: entries.length, removed: 0, kept: 0 };
  }

  /**
   * Contents the plan takes from elsewhere in the copy are staged before
   * anything moves (their path may itself be rewritten by this layout),
   * and checked against their hash: a task may have changed them since
   * the plan looked.
   */
  private stageFromCopy(tree: ConfinedTree, plan: SyncPlan, staging: BlobStaging): void {
    for (const [hash, path] of plan.local) {
      if (staging.has(hash)) continue;
      let bytes: Buffer;
      try {
        bytes = readFileSync(tree.entry(path));
      } catch {
        bytes = Buffer.alloc(0);
      }
      try {
        staging.put(hash, bytes);
      } catch {
        throw new OctaskError(
          ErrorCode.BadContent,
          `${path} in the agent's copy changed while the sync ran (a task was writing it?); run again`,
        );
      }
    }
    for (const hash of plan.need.keys()) {
      if (!staging.has(hash))
        throw new OctaskError(
          ErrorCode.BadContent,
          `the agent's copy changed while the sync waited for a task running in it; run again`,
        );
    }
  }

  /**
   * Refuses a manifest link that leaves the copy once resolved through the
   * links it ships with and those already in the copy (a link from an
   * earlier sync, or one a task made), as the OS would resolve it.
   */
  private checkLinksAgainstCopy(dir: string, entries: readonly ManifestEntry[]): void {
    // Only the manifest's links are judged: none, nothing to check.
    if (!entries.some((e) => 'link' in e)) return;
    const listed = new Map<string, string | undefined>();
    for (const e of entries) {
      listed.set(e.path, 'link' in e ? e.link : undefined);
      // Folders above an entry are made real folders by the layout.
      for (let i = e.path.indexOf('/'); i !== -1; i = e.path.indexOf('/', i + 1)) {
        if (!listed.has(e.path.slice(0, i))) listed.set(e.path.slice(0, i), undefined);
      }
    }
    const lookup = (path: string): string | undefined =>
      listed.has(path) ? listed.get(path) : linkOnDisk(dir, path);
    for (const e of entries) {
      if ('link' in e && !isInsideWorkspace(e.path, e.link, lookup)) {
        throw new OctaskError(
          ErrorCode.BadPath,
          `${e.path}: symlink to ${JSON.stringify(e.link)} leads outside the workspace through links already in the copy`,
        );
      }
    }
  }

  private async layOutIn(
    tree: ConfinedTree,
    entries: readonly ManifestEntry[],
    preserve: readonly string[],
    clean: boolean,
    from: { before: State; plan: SyncPlan; staging: BlobStaging; keptKnown: boolean },
  ): Promise<{ after: State; written: number; removed: number; kept?: number; changed: boolean }> {
    const { before } = from;
    const after: State = {};
    let written = 0;
    const folders = new Set<string>();
    const targets: ManifestFile[] = [];
    /** Whether a path not in the last layout is written (it may stand where a task made a file). */
    let newPaths = false;
    /** Targets per content still to be laid out: the last one gets the staged file itself. */
    const left = new Map<string, number>();
    /** Listed paths the last layout had too: all of them when this equals its count. */
    let tracked = 0;
    // Entries come sorted, so most share their folder with the one before.
    let lastParent = '';
    for (const e of entries) {
      const slash = e.path.lastIndexOf('/');
      const parent = slash === -1 ? '' : e.path.slice(0, slash);
      if (parent !== '' && parent !== lastParent) {
        tree.folder(parent);
        for (let p = parent; p !== '.' && !folders.has(p); p = dirname(p)) folders.add(p);
      }
      lastParent = parent;
      if (Object.hasOwn(before, e.path)) tracked++;
      if ('link' in e) {
        const current = tree.lstat(e.path);
        if (!current?.isSymbolicLink() || readlinkSync(tree.entry(e.path)) !== e.link) {
          if (current?.isDirectory()) tree.remove(e.path);
          await tree.linkIn(e.path, e.link);
          written++;
          if (!(e.path in before)) newPaths = true;
        }
        after[e.path] = { link: e.link };
        continue;
      }
      const was = before[e.path];
      if (!from.plan.changed.has(e.path) && was) {
        after[e.path] = was;
        continue;
      }
      targets.push(e);
      if (!was) newPaths = true;
      left.set(e.hash, (left.get(e.hash) ?? 0) + 1);
    }
    let slice = performance.now();
    for (const entry of targets) {
      const n = (left.get(entry.hash) ?? 1) - 1;
      left.set(entry.hash, n);
      // The staged file's own stamp is recorded: a rename and a chmod change neither size nor mtime.
      let stamp = from.staging.stampOf(entry.hash);
      if (!stamp)
        throw new OctaskError(ErrorCode.BadContent, `${entry.path}: its content was not staged`);
      if (n === 0) {
        tree.moveIn(from.staging.pathOf(entry.hash), entry.path, entry.mode, stamp.mode);
        from.staging.moved(entry.hash);
      } else {
        const copy = from.staging.duplicate(entry.hash);
        stamp = copy.stamp;
        tree.moveIn(copy.path, entry.path, entry.mode, stamp.mode);
      }
      after[entry.path] = {
        hash: entry.hash,
        mode: entry.mode,
        size: stamp.size,
        mtimeMs: stamp.mtimeMs,
      };
      if (performance.now() - slice > SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        slice = performance.now();
      }
    }
    written += targets.length;
    const trackedBefore = Object.keys(before);
    // Only a layout that changed something, dropped a workspace file or is
    // clean walks the copy (for what to remove and the count of what tasks
    // made); an unchanged copy is left unread.
    // A layout that only rewrote files already there leaves what tasks made
    // as it was counted (from.keptKnown): no walk either.
    const walk =
      clean || tracked !== trackedBefore.length || (written > 0 && (newPaths || !from.keptKnown));
    if (!walk)
      return {
        after,
        written,
        removed: 0,
        changed: written > 0 || trackedBefore.length !== entries.length,
      };
    const { removed, kept } = tidyCopy(tree, {
      listed: new Set(entries.map((e) => e.path)),
      folders,
      tracked: new Set(trackedBefore),
      preserve,
      clean,
    });
    return { after, written, removed, kept, changed: true };
  }

  /** The copy's last layout: from memory, else its state.json (empty when there is none). */
  private record(workspace: string): CopyRecord {
    let record = this.records.get(workspace);
    if (!record) {
      record = readRecord(this.recordPath(workspace, STATE_RECORD));
      this.records.set(workspace, record);
    }
    return record;
  }

  private saveRecord(workspace: string, record: CopyRecord, changed: boolean): void {
    // Only layouts save records, and they lay out validated manifests.
    record.checked = true;
    const had = this.records.get(workspace);
    had?.watch?.close();
    // Begun once the layout wrote its last file: its own writes are not events.
    record.watch = CopyWatch.start(this.dirOf(workspace), Object.keys(record.files));
    this.records.set(workspace, record);
    const path = this.recordPath(workspace, STATE_RECORD);
    // Rewritten only when it changed (it is ~150 bytes a file); else touched, as the copy's last use.
    if (changed || had?.digest !== record.digest) {
      // Written a little after the sync is answered, not while the task it
      // was for starts (10,000 files are a few ms of JSON): the record in
      // memory is the one used, and a state.json lost to a crash only makes
      // the next sync stat and compare (a file it does not vouch for is sent
      // again). A newer layout within that time writes its own instead.
      const write = (): void => {
        this.unsaved.delete(workspace);
        if (this.records.get(workspace) !== record) return;
        try {
          writeFileSync(path, JSON.stringify({ v: 2, digest: record.digest, files: record.files }));
        } catch {
          // A full disk, say: the next layout writes it again; nothing trusts a missing one.
        }
      };
      clearTimeout(this.unsaved.get(workspace)?.timer);
      this.unsaved.set(workspace, { write, timer: setTimeout(write, RECORD_DELAY_MS).unref() });
    } else {
      const now = new Date();
      utimes(path, now, now).catch(() => undefined);
    }
  }

  /** Whether every file and link of the last layout is on disk as it left them. */
  private filesAsLaidOut(workspace: string, files: State): boolean {
    const dir = this.dirOf(workspace);
    for (const [path, was] of Object.entries(files)) {
      // Plain paths, as in plan(): metadata only.
      const st = lstatSync(join(dir, path), { throwIfNoEntry: false });
      if ('hash' in was ? !sameAsLaidOut(st, was) : !st?.isSymbolicLink()) return false;
    }
    return true;
  }

  /** Writes every record not yet in its state.json: before the agent stops. */
  flushRecords(): void {
    for (const { write, timer } of [...this.unsaved.values()]) {
      clearTimeout(timer);
      write();
    }
  }

  /** A file of the agent's own beside the copy of `workspace` (state, setup records). */
  recordPath(workspace: string, name: string): string {
    return join(this.dirOf(workspace), '..', name);
  }

  /**
   * The files under the copy that match `globs`, hashed, for bringing back
   * as artifacts. Links are followed neither in the walk nor when hashing.
   */
  async collect(
    workspace: string,
    globs: readonly string[],
  ): Promise<{ entries: ManifestEntry[]; paths: Map<string, string> }> {
    const dir = this.dirOf(workspace);
    const entries: ManifestEntry[] = [];
    const paths = new Map<string, string>();
    if (!lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) return { entries, paths };
    const tree = new ConfinedTree(dir, { replaceNonFolders: false });
    const walk = async (rel: string): Promise<void> => {
      let folder: string;
      try {
        folder = tree.folder(rel);
      } catch {
        return; // replaced by a link or a file since it was listed
      }
      const names = readdirSync(folder).sort();
      for (const name of names) {
        const path = rel ? `${rel}/${name}` : name;
        const st = lstatSync(join(folder, name), { throwIfNoEntry: false });
        if (!st) continue;
        if (st.isDirectory()) {
          await walk(path);
        } else if (matchesAnyGlob(globs, path) && !checkRelativePath(path)) {
          if (st.isSymbolicLink()) {
            // Every link is reported, even one leading out: the dispatcher decides,
            // and tells its user which it refused and why.
            entries.push({ path, link: readlinkSync(join(folder, name)) });
          } else if (st.isFile()) {
            // Hashed through the confined folder; sent later by its plain path, and
            // the dispatcher writes a blob only if it matches this hash.
            const hash = await hashFile(join(folder, name));
            entries.push({ path, size: st.size, mode: st.mode & 0o777, hash });
            paths.set(hash, join(dir, path));
          }
        }
      }
    };
    try {
      await walk('');
    } finally {
      tree.close();
    }
    return { entries, paths };
  }
}

/**
 * The kernel queued a watch's events when the files were written; a whole
 * turn of the loop (a poll phase between two immediates) reads them before
 * the watch is believed.
 */
async function deliverEvents(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
}

function readRecord(path: string): CopyRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return { files: {} };
  }
  if (typeof parsed !== 'object' || parsed === null) return { files: {} };
  const { v, digest, files } = parsed as { v?: unknown; digest?: unknown; files?: unknown };
  // Before protocol 3 the file held the files alone: still good for the plan, never for a check.
  if (v !== 2) return { files: parsed as State };
  return {
    ...(typeof digest === 'string' ? { digest } : {}),
    files: typeof files === 'object' && files !== null ? (files as State) : {},
  };
}

export function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** This machine as a target for names: anything not listed behaves like Linux. */
function targetPlatform(): TargetPlatform {
  const p = process.platform as string;
  return p === 'darwin' || p === 'win32' || p === 'android' ? p : 'linux';
}
