/**
 * Environments: a team's named, reusable recipe for tasks — an image, repositories to clone,
 * setup commands, the NAMES of variables a task may receive from its worker, and the task's
 * size (CPUs, memory). Values never pass through the control plane: a worker resolves names
 * against its own environment.
 *
 * Invariant: everything here is validated at the API edge and again by the CLI, so a stored
 * environment is always one a worker can act on without re-checking shapes (it still treats the
 * strings as hostile when it runs them).
 */
import * as z from 'zod';
import { formatByteSize, parseByteSize } from '../lib/byte-size.js';
import { TeamName } from './names.js';

/** A checkout is a handful of repositories; 20 leaves room for monorepo-plus-tools setups. */
export const MAX_REPOSITORIES = 20;
/** Setup is a short script, not a pipeline: 50 steps of ≤ 8 KiB keep a row under ~400 KiB. */
export const MAX_SETUP_COMMANDS = 50;
export const MAX_SETUP_COMMAND_BYTES = 8 * 1024;
/** Two hours: long enough for a cold dependency install, short enough to notice a hang. */
export const MAX_SETUP_TIMEOUT_SECONDS = 7200;
/** Far more variables than a real task needs; keeps offers and rows small. */
export const MAX_VARIABLE_NAMES = 100;
/** OCI references are at most a 255-character repository plus tag/digest in practice. */
export const MAX_IMAGE_CHARS = 255;
/** URLs longer than this are not repositories anyone types; git itself has no useful limit. */
export const MAX_REPOSITORY_URL_CHARS = 2048;
export const MAX_REF_CHARS = 255;
/** Longer names are almost certainly a value pasted by mistake. */
export const MAX_VARIABLE_NAME_CHARS = 128;
/** Docker's granularity for `--cpus`: a hundredth of a CPU. */
export const MIN_TASK_CPUS = 0.01;
/**
 * A guard against typos (`2000` for `2`), not a capacity: more than any one machine a task runs
 * on has. The real bound is the worker's (a docker worker's `docker.max_cpus`).
 */
export const MAX_TASK_CPUS = 256;
/** Docker's own floor for a container's memory: it refuses less. */
export const MIN_TASK_MEMORY_BYTES = 6 * 1024 ** 2;
/** A typo guard like MAX_TASK_CPUS (`2t` for `2g`); the worker's `docker.max_memory` is the real bound. */
export const MAX_TASK_MEMORY_BYTES = 1024 ** 4;

export const EnvironmentId = z.string().regex(/^env_[a-z2-7]{20}$/, 'must be an environment id like env_…');

/** Same rules as a team name: it appears in CLI output, logs and (later) container labels. */
export const EnvironmentName = TeamName;

export const ACCEPTED_REPOSITORY_FORMS = 'https://host/path, ssh://[user@]host[:port]/path, user@host:path, or an absolute local path (/srv/repos/x)';

// A character class that excludes whitespace and control characters (git URLs never contain them,
// and they are how an argument turns into two).
const UNSAFE_CHARS = /[\s\u0000-\u001f\u007f]/;
/** scp-like syntax: user@host:path; host is a DNS name (no option-looking leading '-'). */
const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9][A-Za-z0-9.-]*:[^:].*$/;

/**
 * Why a repository URL is refused, or undefined if it is one of the accepted forms. Other git
 * transports are refused on purpose: `file://` reads the worker's disk by URL, `ext::` runs a
 * command, and anything starting with '-' would be read by git as an option.
 */
export function repositoryUrlProblem(url: string): string | undefined {
  const accepted = `accepted forms: ${ACCEPTED_REPOSITORY_FORMS}`;
  if (url.length === 0) return `must not be empty — ${accepted}`;
  if (UNSAFE_CHARS.test(url)) return `must not contain whitespace or control characters — ${accepted}`;
  if (url.startsWith('-')) return `must not start with "-" (git would read it as an option) — ${accepted}`;
  if (url.startsWith('/')) {
    if (url.split('/').includes('..')) return `an absolute local path must not contain ".." segments — ${accepted}`;
    return undefined;
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return `is not a valid URL — ${accepted}`;
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'ssh:') {
      return `uses the "${parsed.protocol.slice(0, -1)}" transport, which is not allowed — ${accepted}`;
    }
    if (parsed.hostname === '' || parsed.hostname.startsWith('-')) return `must name a host — ${accepted}`;
    if (parsed.protocol === 'https:' && (parsed.username !== '' || parsed.password !== '')) {
      return 'must not embed credentials — list the token variable in secret_names and let the worker supply it';
    }
    if (parsed.password !== '') return 'must not embed a password — use an SSH key on the worker';
    return undefined;
  }
  if (url.includes('::')) return `uses a git remote helper ("transport::address"), which is not allowed — ${accepted}`;
  if (SCP_LIKE.test(url)) return undefined;
  return `is not a recognised repository address — ${accepted}`;
}

export const RepositoryUrl = z
  .string()
  .max(MAX_REPOSITORY_URL_CHARS, `must be at most ${MAX_REPOSITORY_URL_CHARS} characters`)
  .superRefine((url, ctx) => {
    const problem = repositoryUrlProblem(url);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .describe(`the repository to clone: ${ACCEPTED_REPOSITORY_FORMS}`);

/** A branch, tag or commit: the characters git allows in ref names that are also safe in argv. */
export const GitRef = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_REF_CHARS, `must be at most ${MAX_REF_CHARS} characters`)
  .regex(/^[A-Za-z0-9._/][A-Za-z0-9._/+-]*$/, 'may contain only letters, digits, ".", "_", "/", "+" and "-", and must not start with "-"')
  .refine((s) => !s.includes('..') && !s.endsWith('/') && !s.endsWith('.lock'), 'is not a valid git ref (no "..", no trailing "/" or ".lock")')
  .describe('branch, tag or commit to check out (default: the remote HEAD)');

export const Repository = z.strictObject({
  url: RepositoryUrl,
  ref: GitRef.optional(),
});
export type Repository = z.infer<typeof Repository>;

/**
 * An environment variable's NAME. A value pasted here ("TOKEN=abc") is refused with words that
 * say so: values never belong in an environment definition.
 */
export const VariableName = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_VARIABLE_NAME_CHARS, `must be at most ${MAX_VARIABLE_NAME_CHARS} characters`)
  .superRefine((name, ctx) => {
    if (name.includes('=')) {
      ctx.addIssue({ code: 'custom', message: 'must be a variable NAME, not NAME=value — values are supplied by the worker, never stored here' });
    } else if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      ctx.addIssue({ code: 'custom', message: 'must be a variable name: letters, digits and "_", not starting with a digit' });
    }
  });

function uniqueNames(label: string) {
  return z
    .array(VariableName)
    .max(MAX_VARIABLE_NAMES, `may list at most ${MAX_VARIABLE_NAMES} ${label}`)
    .refine((names) => new Set(names).size === names.length, `must not list a name twice`);
}

const SetupCommand = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => Buffer.byteLength(s, 'utf8') <= MAX_SETUP_COMMAND_BYTES, `must be at most ${MAX_SETUP_COMMAND_BYTES / 1024} KiB`);

/** An OCI reference (registry/repository:tag or @digest); the docker backend resolves it. */
const Image = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_IMAGE_CHARS, `must be at most ${MAX_IMAGE_CHARS} characters`)
  .regex(/^[a-z0-9][A-Za-z0-9._/:@+-]*$/, 'must be an OCI image reference like ghcr.io/org/image:tag');

/** A value quoted in an error message: short, and never able to break the message's line. */
function quoted(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return typeof value === 'object' ? 'an object' : typeof value;
}

/**
 * Why `value` is not a task's CPU count, or undefined if it is one: a JSON number, fractions
 * allowed, from MIN_TASK_CPUS to MAX_TASK_CPUS. Worded to follow a field or flag name.
 */
export function cpusProblem(value: unknown): string | undefined {
  if (typeof value !== 'number') return `must be a number of CPUs such as 2 or 0.5 (a JSON number), got ${typeof value === 'string' ? `the string ${quoted(value)}` : quoted(value)}`;
  if (!Number.isFinite(value)) return `must be a finite number of CPUs such as 2 or 0.5, got ${value}`;
  if (value < MIN_TASK_CPUS) return `must be at least ${MIN_TASK_CPUS} (a hundredth of a CPU), got ${value} — ask for a fraction such as 0.5, or leave cpus out for the worker's default`;
  if (value > MAX_TASK_CPUS) return `must be at most ${MAX_TASK_CPUS}, got ${value} — ask for the CPUs the task needs (a docker worker allows at most its docker.max_cpus)`;
  return undefined;
}

const SIZE_EXAMPLES = '"512m", "2g" or "1.5g" (units k, m, g, t are powers of 1024), or a whole number of bytes';

/**
 * Why `value` is not a task's memory size, or undefined if it is one: a size in Docker's syntax
 * (lib/byte-size.ts) or a whole number of bytes, from 6m to 1t. Worded to follow a field or flag name.
 */
export function memoryProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return `must be a size such as ${SIZE_EXAMPLES}, got ${quoted(value)}`;
  if (typeof value === 'number' && !Number.isSafeInteger(value)) return `must be a whole number of bytes, got ${value} — or write a size such as "1.5g"`;
  const bytes = parseByteSize(value);
  if (bytes === undefined) return `must be a size such as ${SIZE_EXAMPLES}, got ${quoted(value)}`;
  if (bytes < MIN_TASK_MEMORY_BYTES) {
    const plain = typeof value === 'number' || /^\d+$/.test(value) ? ` — a plain number is bytes: write ${String(value)}m for megabytes` : ' — ask for more, or leave memory out for the worker\'s default';
    return `must be at least 6m (${formatByteSize(MIN_TASK_MEMORY_BYTES)}, Docker's floor), got ${quoted(value)} (${formatByteSize(bytes)})${plain}`;
  }
  if (bytes > MAX_TASK_MEMORY_BYTES) return `must be at most 1t (${formatByteSize(MAX_TASK_MEMORY_BYTES)}), got ${quoted(value)} — ask for the memory the task needs (a docker worker allows at most its docker.max_memory)`;
  return undefined;
}

/** A zod schema from a `…Problem` function, with the JSON Schema the published documents show. */
function checkedBy<T>(problem: (value: unknown) => string | undefined, jsonSchema: Record<string, unknown>) {
  return z
    .custom<T>(() => true)
    .check((ctx) => {
      const message = problem(ctx.value);
      if (message !== undefined) ctx.issues.push({ code: 'custom', input: ctx.value, message });
    })
    .meta(jsonSchema);
}

export const Cpus = checkedBy<number>(cpusProblem, {
  type: 'number',
  minimum: MIN_TASK_CPUS,
  maximum: MAX_TASK_CPUS,
  description: `CPUs, fractions allowed (0.5): ${MIN_TASK_CPUS} – ${MAX_TASK_CPUS}`,
});

export const MemorySize = checkedBy<string | number>(memoryProblem, {
  anyOf: [
    { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)?([kmgtKMGT]([iI]?[bB])?|[bB])?$', maxLength: 32 },
    { type: 'integer', minimum: MIN_TASK_MEMORY_BYTES, maximum: MAX_TASK_MEMORY_BYTES },
  ],
  description: 'memory: a size such as 512m, 2g or 1.5g (binary units k, m, g, t), or bytes; 6m – 1t',
});

const SIZE_OBJECT = 'must be an object such as {"cpus": 2, "memory": "4g"} (either field may be left out)';

/**
 * A task's size: the CPUs and memory its container gets instead of the worker's defaults. The
 * docker backend applies it, never beyond the worker's docker.max_cpus / docker.max_memory; the
 * direct backend ignores it (its tasks are host processes without limits). Either field may be
 * left out: that one stays the worker's default. Memory is kept as written ("2g" stays "2g").
 */
export const Resources = z.strictObject(
  {
    cpus: Cpus.optional(),
    memory: MemorySize.optional(),
  },
  { error: (issue) => (issue.code === 'invalid_type' ? `${SIZE_OBJECT}, got ${quoted(issue.input)}` : undefined) },
);
export type Resources = z.infer<typeof Resources>;

/** The same in a PATCH: a field given replaces that field, null clears it, absent leaves it. */
export const ResourcesPatch = z.strictObject(
  {
    cpus: Cpus.nullable().optional(),
    memory: MemorySize.nullable().optional(),
  },
  { error: (issue) => (issue.code === 'invalid_type' ? `${SIZE_OBJECT}, or null to clear both; got ${quoted(issue.input)}` : undefined) },
);
export type ResourcesPatch = z.infer<typeof ResourcesPatch>;

/** A size as views show it (already validated when it was stored). */
export const ResourcesView = z.object({
  cpus: z.number().optional(),
  memory: z.union([z.string(), z.number()]).optional(),
});

/** The recipe's fields, shared with the inline form a task may carry (task.ts). */
export const environmentFields = {
  name: EnvironmentName.describe('unique in the team; lowercase letters, digits and "-"'),
  image: Image.describe('OCI image the docker backend runs the task in'),
  repositories: z.array(Repository).max(MAX_REPOSITORIES, `may list at most ${MAX_REPOSITORIES} repositories`),
  setup_commands: z.array(SetupCommand).max(MAX_SETUP_COMMANDS, `may list at most ${MAX_SETUP_COMMANDS} commands`).describe('shell commands run in order after cloning'),
  setup_timeout_seconds: z.number().int().min(1).max(MAX_SETUP_TIMEOUT_SECONDS),
  secret_names: uniqueNames('secret names').describe('names of secret variables the worker supplies to the task (never values)'),
  env_names: uniqueNames('variable names').describe('names of plain variables the worker passes through to the task (never values)'),
  resources: Resources.describe("the task's size: {cpus?, memory?} instead of the worker's defaults (docker backend, bounded by docker.max_cpus / max_memory; the direct backend ignores it)"),
};

/** Body of `POST /api/v1/environments`. Unknown fields are refused so typos do not pass silently. */
export const EnvironmentCreate = z.strictObject({
  name: environmentFields.name,
  image: environmentFields.image.optional(),
  repositories: environmentFields.repositories.default([]),
  setup_commands: environmentFields.setup_commands.default([]),
  setup_timeout_seconds: environmentFields.setup_timeout_seconds.optional(),
  secret_names: environmentFields.secret_names.default([]),
  env_names: environmentFields.env_names.default([]),
  resources: environmentFields.resources.optional(),
});
export type EnvironmentCreate = z.infer<typeof EnvironmentCreate>;

/** Body of `PATCH /api/v1/environments/:id`: only the fields given change; null clears an optional one. */
export const EnvironmentUpdate = z.strictObject({
  name: environmentFields.name.optional(),
  image: environmentFields.image.nullable().optional(),
  repositories: environmentFields.repositories.optional(),
  setup_commands: environmentFields.setup_commands.optional(),
  setup_timeout_seconds: environmentFields.setup_timeout_seconds.nullable().optional(),
  secret_names: environmentFields.secret_names.optional(),
  env_names: environmentFields.env_names.optional(),
  resources: ResourcesPatch.nullable().optional().describe('changes only the size fields given (null clears one); null clears both'),
});
export type EnvironmentUpdate = z.infer<typeof EnvironmentUpdate>;

export const EnvironmentView = z.object({
  id: z.string(),
  name: z.string(),
  image: z.string().nullable(),
  repositories: z.array(z.object({ url: z.string(), ref: z.string().optional() })),
  setup_commands: z.array(z.string()),
  setup_timeout_seconds: z.number().int().nullable(),
  secret_names: z.array(z.string()),
  env_names: z.array(z.string()),
  resources: ResourcesView.nullable().describe("the task size; null: the worker's defaults"),
  created_at: z.string(),
  updated_at: z.string(),
});
export type EnvironmentView = z.infer<typeof EnvironmentView>;

export const EnvironmentList = z.object({ environments: z.array(EnvironmentView) });
export type EnvironmentList = z.infer<typeof EnvironmentList>;
