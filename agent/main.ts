import { existsSync, rmSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { ErrorCode, isOctaskError, OctaskError } from '../shared/errors';
import { pasteLine } from '../shared/clusterKey';
import type { AgentKeyFile } from '../shared/clusterKey';
import type { Logger } from '../shared/logger';
import { PROTOCOL_VERSION } from '../shared/protocol';
import { OCTASK_VERSION } from '../shared/version';
import { join } from 'node:path';
import { advertise } from './advertise';
import { WorkspaceCopies } from './workspaceCopy';
import { Agent } from './agent';
import { loadOrCreateAgentId } from './identity';
import { TaskCgroups } from './cgroup';
import { Keeper } from './keeper';
import { reapOrphans } from './taskRecords';
import { createAuditLog } from './audit';
import { loadOrCreateAgentKey } from './keyFile';
import { agentKeyCommand, repairHint } from './keyCommand';
import { createStreamLogger, stderrWriter } from './log';
import { countCpus } from './cpuCount';
import { findPortOwner, portTakenMessage } from './portOwner';
import { serviceCommand } from './serviceUnit';
import type { AgentOptions } from './options';
import { AGENT_USAGE, parseAgentOptions } from './options';
import { compilePolicy } from './policy';
import { isLoopback, listen } from './transport';

/**
 * Runs octask-agent until it is stopped by signals. Resolves with the
 * process exit code; the caller exits.
 */
export async function runAgentCli(argv: string[]): Promise<number> {
  if (argv[0] === 'key') return agentKeyCommand(argv.slice(1));
  if (argv[0] === 'service') {
    try {
      return serviceCommand(argv.slice(1));
    } catch (err) {
      process.stderr.write(`octask-agent service: ${(err as Error).message}\n`);
      return 2;
    }
  }
  let options: AgentOptions;
  try {
    options = parseAgentOptions(argv);
  } catch (err) {
    process.stderr.write(`octask-agent: ${(err as Error).message}\n\n${AGENT_USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(AGENT_USAGE);
    return 0;
  }
  if (options.version) {
    process.stdout.write(`octask-agent ${OCTASK_VERSION} (protocol ${PROTOCOL_VERSION})\n`);
    return 0;
  }
  try {
    return await serve(options);
  } catch (err) {
    process.stderr.write(
      `octask-agent: ${isOctaskError(err) ? err.message : ((err as Error).stack ?? String(err))}\n`,
    );
    return isOctaskError(err) ? 2 : 1;
  }
}

async function serve(options: AgentOptions): Promise<number> {
  const logger = createStreamLogger({ level: options.logLevel, pretty: options.pretty });
  const cpuCount = countCpus();
  if (cpuCount.fallback) logger.warn(cpuCount.fallback);
  if (options.insecure && !isLoopback(options.bind)) {
    throw new OctaskError(
      ErrorCode.BadField,
      `--insecure sends commands and output in the clear, so it is only allowed with a loopback --bind (127.0.0.1 or ::1), not ${options.bind}`,
    );
  }
  const policy = compilePolicy(options.allow, options.deny);
  const { file, created } = loadOrCreateAgentKey(options.keyFile);
  const key = file.key;
  if (created) {
    stderrWriter()(
      `Created a new cluster key in ${options.keyFile} (id ${key.id}).\n` +
        `To make another machine a dispatcher of this cluster, run there:\n\n  ${pasteLine(file.key)}\n\n` +
        `To add another agent, run "octask key --pair NAME" on a dispatcher machine and paste the line it prints on the agent.\n\n`,
    );
  }
  const name = agentName(file, options);
  const audit = createAuditLog(options.auditFile, logger);
  // Before listening: end what a previous life of this agent left running
  // (it was killed, and its keeper may have been too), and start the keeper
  // that ends this life's tasks if it dies.
  const orphans = await reapOrphans(options.workdir, logger);
  if (orphans.length > 0)
    logger.warn('ended tasks a previous run of this agent left behind', {
      tasks: orphans.map((o) => o.task),
      killed: orphans.reduce((n, o) => n + o.killed, 0),
    });
  const keeper = Keeper.start(logger);
  const cgroups = TaskCgroups.detect({}, logger);
  if (options.cacheSize !== undefined)
    logger.warn(
      '--cache-size (OCTASK_CACHE_SIZE) no longer does anything: synced files live only in the workspace copies; drop it',
    );
  removeOldStore(options.workdir, logger);
  const copies = new WorkspaceCopies(join(options.workdir, 'workspaces'));
  const removeStale = (): void =>
    void copies.removeStale(options.keepWorkspacesMs).then(
      (gone) => {
        if (gone.length > 0) logger.info('removed unused workspace copies', { gone });
      },
      (err: unknown) => logger.warn('removing unused workspace copies failed', { err }),
    );
  removeStale();
  // An agent that runs for weeks drops unused copies too, not only when it restarts.
  setInterval(removeStale, 24 * 3600_000).unref();
  // Connections that arrive before the agent exists are turned away.
  const holder: { agent?: Agent } = {};
  const server = await listenOrExplain({
    bind: options.bind,
    port: options.port,
    key: options.insecure ? null : key,
    logger,
    onConnection: (ws, peer) =>
      holder.agent ? holder.agent.accept(ws, peer) : ws.close(1013, 'agent starting'),
  });
  const agent = new Agent({
    id: loadOrCreateAgentId(options.workdir),
    name,
    maxJobs: options.maxJobs,
    tags: options.tags,
    shell: options.shell,
    workdir: options.workdir,
    policy,
    killGraceMs: options.killGraceMs,
    logger,
    audit: audit.write,
    os: platform(),
    arch: arch(),
    cpus: cpuCount.cpus,
    copies,
    maxGraceMs: options.maxGraceMs,
    batteryFloorPct: options.batteryFloorPct,
    loadPollMs: options.loadPollMs,
    heartbeatMs: options.heartbeatMs,
    sysfsRoot: options.sysfsRoot,
    orphans,
    keeper,
    cgroups,
  });
  holder.agent = agent;
  const hello = agent.hello();
  const ad = options.mdns
    ? advertise(
        {
          id: hello.id,
          name: hello.name,
          port: server.port,
          protocol: PROTOCOL_VERSION,
          os: hello.os,
          arch: hello.arch,
          cpus: hello.cpus,
          keyId: clusterIdOf(file),
          secure: server.secure,
        },
        logger,
      )
    : undefined;
  logger.info('listening', {
    name: hello.name,
    id: hello.id,
    address: options.bind,
    port: server.port,
    secure: server.secure,
    keyId: clusterIdOf(file),
    ...(file.kind === 'paired' ? { pairing: file.key.pairing, agentKeyId: file.key.id } : {}),
    maxJobs: options.maxJobs,
    shell: options.shell,
    version: OCTASK_VERSION,
  });

  if (file.kind === 'cluster' && !options.insecure) {
    logger.warn(
      `this agent holds the cluster key itself: any task here can read it and reach every agent. ${repairHint(name)}`,
      { keyFile: options.keyFile },
    );
  }

  const running = agent;
  return await new Promise<number>((resolve) => {
    let signals = 0;
    const stop = async (exitCode: number): Promise<void> => {
      running.closeSessions();
      copies.flushRecords();
      await Promise.allSettled([server.close(), ad?.stop(), audit.close(), keeper.stop()]);
      logger.info('stopped');
      resolve(exitCode);
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals === 1) {
        logger.info(`${signal}: draining; send again to cancel running tasks`);
        void ad?.stop();
        void running.drain().then(() => stop(0));
      } else if (signals === 2) {
        logger.info(`${signal}: cancelling running tasks; send again to exit at once`);
        void running.cancelAll().then(() => stop(0));
      } else {
        logger.warn(`${signal}: exiting now`);
        resolve(130);
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // The terminal or ssh session went away: shut down as for TERM, rather than die with tasks left running.
    process.on('SIGHUP', onSignal);
  });
}

/** The cluster this agent belongs to, as mDNS and logs name it. */
function clusterIdOf(file: AgentKeyFile): string {
  return file.kind === 'paired' ? file.key.clusterId : file.key.id;
}

/**
 * A paired agent is named by its pairing: dispatchers check that the name in
 * its hello is the pairing its key proves, so no agent can pass for another.
 */
function agentName(file: AgentKeyFile, options: AgentOptions): string {
  if (file.kind !== 'paired') return options.name;
  if (options.nameGiven && options.name !== file.key.pairing) {
    throw new OctaskError(
      ErrorCode.BadKeyFile,
      `this agent is paired as ${file.key.pairing}, so that is its name; drop --name ${options.name} (or OCTASK_NAME), or pair it as ${options.name}: run "octask key --pair ${options.name}" on a dispatcher machine`,
    );
  }
  return file.key.pairing;
}

/** listen(), with "address in use" turned into one line that says who and what to do. */
async function listenOrExplain(options: Parameters<typeof listen>[0]): ReturnType<typeof listen> {
  try {
    return await listen(options);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    throw new OctaskError(
      ErrorCode.PortInUse,
      portTakenMessage(options.port, findPortOwner(options.port)),
    );
  }
}

/**
 * Agents before 0.3 kept every synced content twice: in `WORKDIR/store` and
 * in the copy. The copies stand on their own now, so the store is removed.
 */
function removeOldStore(workdir: string, logger: Logger): void {
  const store = join(workdir, 'store');
  if (!existsSync(store)) return;
  rmSync(store, { recursive: true, force: true });
  logger.info('removed the content store of an older agent version', { path: store });
}
