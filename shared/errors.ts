/**
 * Stable error codes for everything that crosses a process boundary
 * (wire frames, JSON-RPC errors, CLI messages). Listed in docs/protocol.md;
 * never renumber or rename one, only add.
 */
export const ErrorCode = {
  /** A frame exceeded MAX_FRAME_BYTES (the socket is closed with 1009). */
  FrameTooLarge: 'E_FRAME_TOO_LARGE',
  /** A frame was not valid msgpack, or not a binary frame. */
  FrameMalformed: 'E_FRAME_MALFORMED',
  /** A frame decoded to a message whose `t` we do not know. */
  UnknownType: 'E_UNKNOWN_TYPE',
  /** A known message had a missing or mistyped field. */
  BadField: 'E_BAD_FIELD',
  /** The first frame was not `hello`, or `hello` came twice. */
  HelloRequired: 'E_HELLO_REQUIRED',
  /** The peers speak different protocol versions. */
  ProtocolVersion: 'E_PROTOCOL_VERSION',
  /** The TLS-PSK handshake failed: the peers do not share the cluster key. */
  WrongKey: 'E_WRONG_KEY',
  /** The agent could not be reached (timed out, no route, reset). */
  Unreachable: 'E_UNREACHABLE',
  /** Nothing listens at the agent's address (connection refused): its process is not running. */
  AgentDown: 'E_AGENT_DOWN',
  /** No agent was online to take the work. */
  NoAgents: 'E_NO_AGENTS',
  /** The task names an agent that is not known. */
  NoSuchAgent: 'E_NO_SUCH_AGENT',
  /** The agent's --allow/--deny policy refused the command; it never ran. */
  PolicyRefused: 'E_POLICY_REFUSED',
  /** The agent could not start the command (shell missing, bad cwd). */
  SpawnFailed: 'E_SPAWN_FAILED',
  /** A `run` reused the id of a task the agent already holds. */
  DuplicateTask: 'E_DUPLICATE_TASK',
  /** The agent is shutting down and takes no new work. */
  ShuttingDown: 'E_SHUTTING_DOWN',
  /** The agent rests (battery below its floor, discharging) and takes no new work for now. */
  Resting: 'E_RESTING',
  /** The agent no longer holds a task the dispatcher tried to reattach to. */
  TaskGone: 'E_TASK_GONE',
  /** The peer stopped answering pings. */
  Timeout: 'E_TIMEOUT',
  /** A request to the dispatcher was malformed. */
  BadRequest: 'E_BAD_REQUEST',
  /** A workspace path is unsafe or invalid here (absolute, `..`, through a symlink, a reserved name). */
  BadPath: 'E_BAD_PATH',
  /** Synced content did not match its hash. */
  BadContent: 'E_BAD_CONTENT',
  /** A run names a workspace the agent has no copy of. */
  NoWorkspace: 'E_NO_WORKSPACE',
  /** A run's setup command (`--setup`) failed; the task did not run, and the next one tries the setup again. */
  SetupFailed: 'E_SETUP_FAILED',
  /** The key file is missing or does not hold a key. */
  BadKeyFile: 'E_BAD_KEY_FILE',
  /** The editor's dispatcher process exited while the task was unfinished (the editor says this; no process sends it). */
  DispatcherLost: 'E_DISPATCHER_LOST',
  /** The agent's disk (or its --cache-size) cannot hold what a sync needs, even after evicting; the message says how much was needed and how much is free. */
  NoSpace: 'E_NO_SPACE',
  /** A key holder went past a limit on work it may leave the agent holding (open syncs, manifest entries in flight). */
  Limit: 'E_LIMIT',
  /** The agent cannot listen: its port is taken (by another agent, most likely). */
  PortInUse: 'E_PORT_IN_USE',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error with a stable code, safe to show to a user and to send over the wire. */
export class OctaskError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'OctaskError';
  }
}

export function isOctaskError(err: unknown): err is OctaskError {
  return err instanceof OctaskError;
}
