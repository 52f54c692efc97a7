/**
 * The worker's configuration, parsed once at the edge: a YAML file (`--config`) and flags, flags
 * winning. Input options (strings, durations as text) → resolved config (milliseconds, absolute
 * paths, env values looked up). Unknown keys are errors that name the key, so a typo never
 * silently falls back to a default.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../lib/durations.js';
import { ModelsConfig } from '../llm/config.js';
import { ValidationError } from '../protocol/errors.js';
import { WorkerId } from '../protocol/task.js';
import { parseOrThrow } from '../protocol/zod-errors.js';
import { DockerFileConfig, parseDockerFileConfig, resolveDockerOptions, type DockerOptions } from './backends/docker/options.js';
import { HarnessesConfig, resolveHarnessTemplates, type HarnessTemplate } from './harness-templates.js';
import { ForgeConfig, resolveForges, type ForgeRule } from './forge/config.js';
import { GitCredentialConfig, resolveGitCredentials, type GitCredentialRule } from './git-credentials.js';

export const BACKENDS = ['direct', 'docker'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** Environment variable names a task may receive: the portable POSIX shape. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Names the worker sets itself for the agent; an operator may not override them. */
const RESERVED_ENV = new Set(['HOME', 'TMPDIR', 'PATH', 'AIRLOCK_GATEWAY', 'AIRLOCK_TASK_TOKEN', 'AIRLOCK_EXECUTION_ID', 'AIRLOCK_WORKDIR', 'AIRLOCK_API_KEY']);

const duration = (what: string) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration; write it like 30s, 5m, 250ms or 1h (${what})` });
      return z.NEVER;
    }
    return ms;
  });

/** The YAML file's keys (snake_case, as in docs/configuration.md). */
export const WorkerFileConfig = z.strictObject({
  server: z.string().optional(),
  api_key: z.string().optional(),
  worker_id: WorkerId.optional(),
  backend: z.enum(BACKENDS).optional(),
  concurrency: z.number().int().min(1).max(1000).optional(),
  env: z.array(z.string()).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  no_cleanup: z.boolean().optional(),
  state_dir: z.string().optional(),
  workspace_root: z.string().optional(),
  setup_command: z.string().optional(),
  teardown_command: z.string().optional(),
  setup_timeout: duration('setup_timeout').optional(),
  teardown_timeout: duration('teardown_timeout').optional(),
  drain_timeout: duration('drain_timeout').optional(),
  cancel_grace: duration('cancel_grace').optional(),
  log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).optional(),
  /** Command-template agents, run by tasks with harness `command:<name>` (see harness-templates.ts). */
  harnesses: HarnessesConfig.optional(),
  /** BYOLLM: the team's own providers; model requests then go straight there, never to the server. */
  models: ModelsConfig.optional(),
  /** Tokens for the tasks' https repositories, by URL prefix (NAMES of variables, never values). */
  git_credentials: z.array(GitCredentialConfig).optional(),
  /** Where to open pull/merge requests for pushed branches. */
  forges: z.array(ForgeConfig).optional(),
  /** The docker backend's options (backends/docker/options.ts). */
  docker: DockerFileConfig.optional(),
});
export type WorkerFileConfig = z.infer<typeof WorkerFileConfig>;

/** Flags as commander hands them over (already camelCase). */
export interface WorkerFlags {
  config?: string;
  server?: string;
  apiKey?: string;
  workerId?: string;
  backend?: string;
  concurrency?: string;
  env?: string[];
  label?: string[];
  cleanup?: boolean; // commander's --no-cleanup sets cleanup=false
  stateDir?: string;
  workspaceRoot?: string;
  setupCommand?: string;
  teardownCommand?: string;
  drainTimeout?: string;
  logLevel?: string;
  /** docker backend */
  defaultImage?: string;
  pullPolicy?: string;
  volume?: string[];
}

export interface WorkerConfig {
  serverUrl: string;
  apiKey: string;
  workerId: string;
  backend: BackendName;
  concurrency: number;
  /** Variables given to every task: name → value (resolved from the worker's env when no value was given). */
  env: Record<string, string>;
  labels: Record<string, string>;
  noCleanup: boolean;
  stateDir: string;
  workspaceRoot: string;
  setupCommand: string | null;
  teardownCommand: string | null;
  setupTimeoutMs: number;
  teardownTimeoutMs: number;
  drainTimeoutMs: number;
  cancelGraceMs: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Command templates by name (`command:<name>` harnesses). */
  harnesses: Record<string, HarnessTemplate>;
  /** BYOLLM providers; null: model requests go to the control plane's LLM gateway. */
  models: ModelsConfig | null;
  /** `git_credentials:` with the tokens looked up in the worker's environment. */
  gitCredentials: GitCredentialRule[];
  /** `forges:` with the tokens looked up in the worker's environment. */
  forges: ForgeRule[];
  /** The docker backend's resolved options (null for other backends). */
  docker: DockerOptions | null;
}

/** Setup commands install things: minutes, not seconds. Teardown should be quick. */
const DEFAULT_SETUP_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_TEARDOWN_TIMEOUT_MS = 60_000;
/** Drain: how long SIGTERM waits for running tasks before stopping them. */
const DEFAULT_DRAIN_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_CANCEL_GRACE_MS = 10_000;

export function loadWorkerFile(path: string): WorkerFileConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ValidationError(`cannot read the worker config file ${path}: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text) ?? {};
  } catch (err) {
    throw new ValidationError(`the worker config file ${path} is not valid YAML: ${(err as Error).message}`);
  }
  return parseOrThrow(WorkerFileConfig, data, `worker config file ${path}`);
}

/** `KEY` or `KEY=VALUE` → [name, value]; a bare KEY takes its value from `from`. */
export function parseEnvSpec(spec: string, from: NodeJS.ProcessEnv, flag: string): [string, string] {
  const eq = spec.indexOf('=');
  const name = eq === -1 ? spec : spec.slice(0, eq);
  if (!ENV_NAME.test(name)) {
    throw new ValidationError(`${flag} "${spec}": "${name}" is not a valid environment variable name (letters, digits and _, not starting with a digit)`);
  }
  if (RESERVED_ENV.has(name)) {
    throw new ValidationError(`${flag} "${name}": this variable is set by the worker itself and cannot be passed to tasks`);
  }
  if (eq !== -1) return [name, spec.slice(eq + 1)];
  const value = from[name];
  if (value === undefined) {
    throw new ValidationError(`${flag} ${name}: no value given and the worker's environment has no ${name} — use ${flag} ${name}=VALUE or export ${name}`);
  }
  return [name, value];
}

export function resolveWorkerConfig(flags: WorkerFlags, env: NodeJS.ProcessEnv, cwd = process.cwd()): WorkerConfig {
  const file = flags.config ? loadWorkerFile(flags.config) : ({} as WorkerFileConfig);
  const serverUrl = flags.server ?? file.server ?? env.AIRLOCK_SERVER;
  if (!serverUrl) throw new ValidationError('no server given: pass --server URL, set server: in the config file, or export AIRLOCK_SERVER');
  try {
    const url = new URL(serverUrl);
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) throw new Error('unsupported scheme');
  } catch {
    throw new ValidationError(`--server "${serverUrl}" is not an http(s) URL like https://airlock.example.com`);
  }
  const apiKey = flags.apiKey ?? env.AIRLOCK_API_KEY ?? file.api_key;
  if (!apiKey) throw new ValidationError('no API key given: export AIRLOCK_API_KEY (preferred), or pass --api-key, with a key of role "worker"');
  const workerId = parseOrThrow(WorkerId, flags.workerId ?? file.worker_id ?? defaultWorkerId(), 'worker id', '--worker-id');
  const backend = parseOrThrow(z.enum(BACKENDS), flags.backend ?? file.backend ?? 'direct', 'backend', '--backend');
  let concurrency = file.concurrency ?? 1;
  if (flags.concurrency !== undefined) {
    concurrency = Number(flags.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) {
      throw new ValidationError(`--concurrency "${flags.concurrency}" must be a whole number from 1 to 1000`);
    }
  }
  const taskEnv: Record<string, string> = {};
  for (const spec of file.env ?? []) {
    const [name, value] = parseEnvSpec(spec, env, 'env:');
    taskEnv[name] = value;
  }
  for (const spec of flags.env ?? []) {
    const [name, value] = parseEnvSpec(spec, env, '-e');
    taskEnv[name] = value;
  }
  const labels: Record<string, string> = { ...file.labels };
  for (const spec of flags.label ?? []) {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new ValidationError(`--label "${spec}" must look like key=value`);
    labels[spec.slice(0, eq)] = spec.slice(eq + 1);
  }
  const drainTimeoutMs = flags.drainTimeout !== undefined ? parseDuration(flags.drainTimeout) : file.drain_timeout;
  if (flags.drainTimeout !== undefined && drainTimeoutMs === undefined) {
    throw new ValidationError(`--drain-timeout "${flags.drainTimeout}" is not a duration; write it like 30s or 10m`);
  }
  const absolute = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  const stateDir = absolute(flags.stateDir ?? file.state_dir ?? resolve(homedir(), '.airlock', 'worker', workerId));
  const logLevel = parseOrThrow(
    z.enum(['trace', 'debug', 'info', 'warn', 'error']),
    flags.logLevel ?? file.log_level ?? 'info',
    'log level',
    '--log-level',
  );
  const setupCommand = flags.setupCommand ?? file.setup_command ?? null;
  const teardownCommand = flags.teardownCommand ?? file.teardown_command ?? null;
  if (backend !== 'direct' && (setupCommand !== null || teardownCommand !== null)) {
    throw new ValidationError(
      `${setupCommand !== null ? 'setup_command' : 'teardown_command'} runs on the worker's host and applies to the direct backend only — with the ${backend} backend, build what tasks need into the image, or give the environment setup commands (they run inside the task environment)`,
    );
  }
  if (backend !== 'docker' && (flags.defaultImage !== undefined || flags.pullPolicy !== undefined || (flags.volume?.length ?? 0) > 0)) {
    throw new ValidationError(`--default-image, --pull-policy and --volume apply to the docker backend — add --backend docker, or remove them`);
  }
  if (backend !== 'docker' && file.docker !== undefined) {
    throw new ValidationError(`the config file has a docker: block, but the worker runs the ${backend} backend — set backend: docker (or --backend docker), or remove the block`);
  }
  return {
    serverUrl,
    apiKey,
    workerId,
    backend,
    concurrency,
    env: taskEnv,
    labels,
    noCleanup: flags.cleanup === false || file.no_cleanup === true,
    stateDir,
    workspaceRoot: absolute(flags.workspaceRoot ?? file.workspace_root ?? resolve(stateDir, 'ws')),
    setupCommand,
    teardownCommand,
    setupTimeoutMs: file.setup_timeout ?? DEFAULT_SETUP_TIMEOUT_MS,
    teardownTimeoutMs: file.teardown_timeout ?? DEFAULT_TEARDOWN_TIMEOUT_MS,
    drainTimeoutMs: drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
    cancelGraceMs: file.cancel_grace ?? DEFAULT_CANCEL_GRACE_MS,
    logLevel,
    harnesses: resolveHarnessTemplates(file.harnesses),
    models: file.models ?? null,
    gitCredentials: resolveGitCredentials(file.git_credentials ?? [], env),
    forges: resolveForges(file.forges ?? [], env),
    docker: backend === 'docker' ? resolveDocker(file.docker, flags) : null,
  };
}

/** The docker block with the flags merged in (flags win; -v adds to the file's volumes). */
function resolveDocker(file: DockerFileConfig | undefined, flags: WorkerFlags): DockerOptions {
  const merged = parseDockerFileConfig(
    {
      ...file,
      ...(flags.defaultImage !== undefined ? { default_image: flags.defaultImage } : {}),
      ...(flags.pullPolicy !== undefined ? { pull_policy: flags.pullPolicy } : {}),
      ...(flags.volume?.length ? { volumes: [...(file?.volumes ?? []), ...flags.volume] } : {}),
    },
    'docker backend options (config file docker: and flags)',
  );
  return resolveDockerOptions(merged);
}

function defaultWorkerId(): string {
  const host = (process.env.HOSTNAME ?? 'worker').toLowerCase().replace(/[^a-z0-9._-]/g, '-').replace(/^[^a-z0-9]+/, '');
  return (host || 'worker').slice(0, 63);
}
