/**
 * `airlock task …`: create, list, show, follow, cancel and message tasks, through the API client.
 * Every flag is validated here with an error that names the flag; results go to stdout
 * (`--json` for machines), progress and hints to stderr.
 *
 * Exit codes of `task create --wait`: 0 the task succeeded, 1 it failed (reason and message on
 * stderr), 130 it was cancelled (the shell's code for an interrupted command).
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseDuration } from '../lib/durations.js';
import { TASK_STATES, type TaskState } from '../protocol/lifecycle.js';
import { EnvironmentId, EnvironmentName, GitRef, type Repository } from '../protocol/environment.js';
import { Harness, HARNESSES, MAX_BUDGET_TOKENS, MAX_BUDGET_TURNS, MAX_PROMPT_BYTES, MAX_TASK_TIMEOUT_SECONDS, TaskCreate, TaskId, WorkerId, type EventView, type TaskView } from '../protocol/task.js';
import { addConnectionOptions, clientFor, type ApiClient, type ConnectionFlags, type NewTask } from './client.js';
import { formatAge, formatDuration, formatTable, formatTokens, note, printJson, printJsonLine, printLine, summarize } from './output.js';
import { check, collect, parseCpus, parseImage, parseMemory, parseRepo, resourcesFromFlags } from './recipe-flags.js';

/** The API's page-size bounds (server/http/tasks.ts): the CLI checks before asking. */
const MAX_PAGE = 200;
const MAX_TITLE_CHARS = 200;
/** Exit code when the awaited task was cancelled: 128 + SIGINT, what shells use for "interrupted". */
export const EXIT_CANCELLED = 130;

// ── flag parsers (each error names the flag and the fix) ──

function parseWorkerId(flag: string) {
  return (value: string): string => {
    const result = WorkerId.safeParse(value);
    if (!result.success) throw new InvalidArgumentError(`${flag} ${result.error.issues[0]?.message ?? 'is not a worker id'} (e.g. gpu-1).`);
    return value;
  };
}

function parseTimeout(value: string): number {
  const ms = parseDuration(value);
  const seconds = ms === undefined ? NaN : ms / 1000;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_TASK_TIMEOUT_SECONDS) {
    throw new InvalidArgumentError(`--timeout must be whole seconds from 1 to ${MAX_TASK_TIMEOUT_SECONDS} (7 days), like 600, 90s, 30m or 2h.`);
  }
  return seconds;
}

function parseHarness(value: string): string {
  return check(Harness, '--harness', value, `${HARNESSES.join(', ')} or command:NAME`);
}

/** A whole number in [1, max] for a budget flag. */
function parseBudget(flag: string, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > max) throw new InvalidArgumentError(`${flag} must be a whole number from 1 to ${max}.`);
    return n;
  };
}

/** `--max-seconds`: whole seconds, or a duration like 90s, 30m, 2h. */
function parseMaxSeconds(value: string): number {
  const ms = parseDuration(value);
  const seconds = ms === undefined ? NaN : ms / 1000;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_TASK_TIMEOUT_SECONDS) {
    throw new InvalidArgumentError(`--max-seconds must be whole seconds from 1 to ${MAX_TASK_TIMEOUT_SECONDS} (7 days), like 600, 90s, 30m or 2h.`);
  }
  return seconds;
}

function parseModel(value: string): string {
  if (value.length === 0 || value.length > 200) throw new InvalidArgumentError('--model must be a model name of 1–200 characters (e.g. claude-sonnet or openai/gpt-4o).');
  return value;
}

function parseBase(value: string): string {
  return check(GitRef, '--base', value, 'main');
}

function parseEnvironment(value: string): string {
  if (EnvironmentId.safeParse(value).success) return value;
  return check(EnvironmentName, '--env', value, 'web-app, or an id like env_…');
}

/** The request field a flag sets, to name the flag when the protocol schema refuses the request. */
const FLAG_OF_FIELD: Record<string, string> = {
  prompt: 'the prompt',
  harness: '--harness',
  worker_id: '--worker-id',
  timeout_seconds: '--timeout',
  title: '--title',
  environment_id: '--env',
  image: '--image',
  repositories: '--repo',
  setup_commands: '--setup',
  resources: '--cpus/--memory',
  'resources.cpus': '--cpus',
  'resources.memory': '--memory',
  budget: '--max-turns/--max-seconds/--max-tokens',
  model: '--model',
  push: '--push',
  pull_request: '--pull-request',
};

/** Check the whole request with the protocol's schema; an error names the flag that set the field. */
function checkRequest(body: NewTask): void {
  const result = TaskCreate.safeParse(body);
  if (result.success) return;
  const issue = result.error.issues[0];
  const field = String(issue?.path[0] ?? '');
  const flag = FLAG_OF_FIELD[issue?.path.slice(0, 2).join('.') ?? ''] ?? FLAG_OF_FIELD[field] ?? field;
  throw new Error(`${flag}: ${issue?.message ?? 'is not valid'}${issue && issue.path.length > 1 ? ` (at ${issue.path.join('.')})` : ''}`);
}

/** `--env NAME|ID`: an id is used as is; a name is looked up among the team's environments. */
async function resolveEnvironment(client: ApiClient, value: string): Promise<string> {
  if (EnvironmentId.safeParse(value).success) return value;
  const environments = await client.listEnvironments();
  const found = environments.find((e) => e.name === value);
  if (!found) {
    const known = environments.map((e) => e.name).join(', ');
    throw new Error(`--env: the team has no environment named "${value}" — ${known ? `it has: ${known}` : 'create one with: airlock env create NAME --repo URL'}`);
  }
  return found.id;
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_PAGE) throw new InvalidArgumentError(`--limit must be a whole number from 1 to ${MAX_PAGE}; use --all to list everything.`);
  return n;
}

function parseTitle(value: string): string {
  if (value.length > MAX_TITLE_CHARS) throw new InvalidArgumentError(`--title may be at most ${MAX_TITLE_CHARS} characters (it is ${value.length}).`);
  return value;
}

function checkTaskId(id: string): string {
  if (!TaskId.safeParse(id).success) throw new Error(`"${id}" is not a task id — task ids look like tsk_ followed by 20 letters and digits (see \`airlock task list\`)`);
  return id;
}

// ── prompt input ──

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Stop reading early: a runaway pipe should not fill memory before we refuse it.
    if (size > MAX_PROMPT_BYTES) break;
    chunks.push(chunk);
  }
  if (size > MAX_PROMPT_BYTES) throw new Error(`the prompt on stdin is over the limit of ${MAX_PROMPT_BYTES / 1024} KiB — shorten it`);
  return Buffer.concat(chunks).toString('utf8');
}

async function readPrompt(argument: string | undefined, file: string | undefined): Promise<string> {
  if (argument !== undefined && file !== undefined) {
    throw new Error('give the prompt once: as an argument, with --file FILE, or as "-" to read stdin (not both an argument and --file)');
  }
  let prompt: string;
  if (argument === '-' || file === '-') prompt = await readStdin();
  else if (file !== undefined) {
    try {
      prompt = await readFile(file, 'utf8');
    } catch (err) {
      throw new Error(`--file ${file} could not be read: ${(err as NodeJS.ErrnoException).code ?? String(err)} — check the path`);
    }
  } else if (argument !== undefined) prompt = argument;
  else throw new Error('no prompt — give it as an argument (airlock task create "make test pass"), with --file FILE, or as "-" to read stdin');
  if (prompt.trim() === '') throw new Error('the prompt is empty — say what the task should do');
  const bytes = Buffer.byteLength(prompt, 'utf8');
  if (bytes > MAX_PROMPT_BYTES) throw new Error(`the prompt is ${bytes} bytes, over the limit of ${MAX_PROMPT_BYTES / 1024} KiB — shorten it, or put large material in the repository and refer to it`);
  return prompt;
}

// ── following ──

/**
 * Print an event for people. Output text goes to the stream it came from, untouched, so
 * `airlock task logs ID > out.txt` captures what the task printed; progress the agent reports
 * (tool calls, clone and push steps) and errors go to stderr, one line each, marked.
 */
function printEvent(event: EventView): void {
  const { kind, data } = event;
  if (kind === 'output') {
    if (typeof data.text === 'string') (data.stream === 'stderr' ? process.stderr : process.stdout).write(data.text);
    return;
  }
  const line = kind === 'error' ? data.message : kind === 'status' ? (data.text ?? data.message) : undefined;
  if (typeof line !== 'string' || line === '') return;
  const marker = kind === 'error' ? '!' : '›';
  process.stderr.write(`${marker} ${line.split('\n')[0]!.slice(0, 300)}\n`);
}

/** Follow until the task ends; returns its final view. */
async function followTask(client: ApiClient, id: string, json: boolean): Promise<TaskView> {
  let last: TaskView | undefined;
  for await (const item of client.follow(id, { onReconnect: (why) => note(`airlock: ${why}; reconnecting…`) })) {
    if (item.type === 'transcript') {
      if (json) printJsonLine(item.event);
      else printEvent(item.event);
    } else if (item.type === 'task') {
      last = item.task;
    }
  }
  // The last `task` frame precedes `end`; ask again only if the stream somehow had none.
  return last && isTerminal(last.state) ? last : client.getTask(id);
}

function isTerminal(state: TaskState): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'cancelled';
}

function exitCodeOf(task: TaskView): number {
  if (task.state === 'succeeded') return 0;
  if (task.state === 'cancelled') return EXIT_CANCELLED;
  return 1;
}

function describeOutcome(task: TaskView): string {
  if (task.state === 'succeeded') return `task ${task.id} succeeded`;
  if (task.state === 'cancelled') return `task ${task.id} was cancelled${task.message ? `: ${task.message}` : ''}`;
  const reason = task.failure_reason ? ` (${task.failure_reason}${task.exit_code !== null ? `, exit code ${task.exit_code}` : ''})` : '';
  return `task ${task.id} failed${reason}${task.message ? `: ${task.message}` : ''}`;
}

// ── rendering ──

function taskRows(tasks: readonly TaskView[]): string {
  const now = Date.now();
  return formatTable(
    ['ID', 'STATE', 'HARNESS', 'WORKER', 'CREATED', 'TITLE'],
    tasks.map((t) => [t.id, t.cancel_requested && !isTerminal(t.state) ? `${t.state} (cancelling)` : t.state, t.harness, t.executions.at(-1)?.worker_id ?? t.worker_id ?? '-', formatAge(t.created_at, now), summarize(t.title ?? t.prompt, 50)]),
  );
}

function showTask(task: TaskView): void {
  const rows: Array<[string, string]> = [
    ['id', task.id],
    ['title', task.title ?? '-'],
    ['state', task.state + (task.cancel_requested && !isTerminal(task.state) ? ' (cancellation requested)' : '')],
    ['harness', task.harness],
    ['routed to', task.worker_id ?? 'any worker'],
    ['timeout', task.timeout_seconds === null ? '-' : `${task.timeout_seconds}s`],
    ['created', task.created_at],
    ['started', task.started_at ?? '-'],
    ['finished', task.finished_at ?? '-'],
    ['duration', formatDuration(task.started_at, task.finished_at)],
  ];
  if (task.failure_reason) rows.push(['failure', task.failure_reason]);
  if (task.exit_code !== null) rows.push(['exit code', String(task.exit_code)]);
  if (task.message) rows.push(['message', task.message]);
  if (task.environment_id) rows.push(['env', task.environment_id]);
  for (const r of task.repositories) rows.push(['repository', `${r.url}${r.ref ? ` @ ${r.ref}` : ''}`]);
  if (task.resources?.cpus !== undefined) rows.push(['cpus', String(task.resources.cpus)]);
  if (task.resources?.memory !== undefined) rows.push(['memory', String(task.resources.memory)]);
  if (task.model) rows.push(['model', task.model]);
  const budget = Object.entries(task.budget ?? {}).map(([k, v]) => `${k} ${v}`);
  if (budget.length > 0) rows.push(['budget', budget.join(', ')]);
  if (task.push) rows.push(['push', 'yes']);
  rows.push(...artifactRows(task));
  const { usage } = task;
  if (usage.requests > 0 || usage.input_tokens > 0 || usage.output_tokens > 0) {
    rows.push(['usage', `${formatTokens(usage.input_tokens)} in, ${formatTokens(usage.output_tokens)} out, ${usage.requests} model request${usage.requests === 1 ? '' : 's'}`]);
  }
  for (const [k, v] of rows) printLine(`${`${k}:`.padEnd(14)}${v}`);
  if (task.artifacts?.summary) {
    printLine();
    printLine('summary:');
    for (const line of task.artifacts.summary.replace(/\n$/, '').split('\n')) printLine(`  ${line}`);
  }
  printLine();
  printLine('prompt:');
  for (const line of task.prompt.replace(/\n$/, '').split('\n')) printLine(`  ${line}`);
  if (task.executions.length > 0) {
    printLine();
    printLine(
      formatTable(
        ['EXECUTION', 'WORKER', 'EPOCH', 'STATE', 'EXIT', 'DURATION', 'REASON'],
        task.executions.map((e) => [e.id, e.worker_id, String(e.epoch), e.state, e.exit_code === null ? '-' : String(e.exit_code), formatDuration(e.started_at, e.finished_at), e.failure_reason ?? '-']),
      ),
    );
  }
}

/** What the latest execution produced: per repository when there are several. */
function artifactRows(task: TaskView): Array<[string, string]> {
  const a = task.artifacts;
  if (!a) return [];
  const rows: Array<[string, string]> = [];
  if (a.stop_reason) rows.push(['stop reason', a.stop_reason]);
  const repositories = a.repositories.length > 0 ? a.repositories : [];
  if (repositories.length === 0 && a.branch) {
    rows.push(['branch', a.branch]);
    rows.push(['commit', a.commit ?? 'none (nothing changed)']);
  }
  for (const r of repositories) {
    const where = repositories.length > 1 ? ` (${r.path})` : '';
    rows.push([`branch`, `${r.branch}${where}`]);
    rows.push(['commit', r.commit ?? 'none (nothing changed)']);
    if (r.commit) rows.push(['changes', `${r.diffstat.files_changed} file${r.diffstat.files_changed === 1 ? '' : 's'}, +${r.diffstat.insertions} -${r.diffstat.deletions}${r.diff_truncated ? ' (diff truncated)' : ''}`]);
    rows.push(['pushed', r.pushed ? 'yes' : r.push_error ? `no: ${r.push_error}` : 'no']);
    if (r.pull_request_url) rows.push(['pull request', r.pull_request_url]);
    else if (r.pull_request_error) rows.push(['pull request', `not opened: ${r.pull_request_error}`]);
  }
  return rows;
}

// ── commands ──

interface CreateOptions extends ConnectionFlags {
  file?: string;
  harness?: string;
  env?: string;
  repo?: Repository[];
  setup?: string[];
  image?: string;
  cpus?: number;
  memory?: string;
  maxTurns?: number;
  maxSeconds?: number;
  maxTokens?: number;
  model?: string;
  push?: boolean;
  pullRequest?: boolean;
  draft?: boolean;
  base?: string;
  workerId?: string;
  timeout?: number;
  title?: string;
  wait?: boolean;
  json?: boolean;
}

interface ListOptions extends ConnectionFlags {
  state?: TaskState;
  workerId?: string;
  limit?: number;
  all?: boolean;
  json?: boolean;
}

/** The request body the flags describe (the environment name, if any, is resolved later). */
function taskRequest(prompt: string, options: CreateOptions): NewTask {
  const body: NewTask = { prompt };
  if (options.harness) body.harness = options.harness;
  if (options.workerId) body.worker_id = options.workerId;
  if (options.timeout !== undefined) body.timeout_seconds = options.timeout;
  if (options.title !== undefined) body.title = options.title;
  if (options.repo) body.repositories = options.repo;
  if (options.setup) body.setup_commands = options.setup;
  if (options.image !== undefined) body.image = options.image;
  const resources = resourcesFromFlags(options);
  if (resources) body.resources = resources;
  const budget: NonNullable<NewTask['budget']> = {};
  if (options.maxTurns !== undefined) budget.max_turns = options.maxTurns;
  if (options.maxSeconds !== undefined) budget.max_seconds = options.maxSeconds;
  if (options.maxTokens !== undefined) budget.max_tokens = options.maxTokens;
  if (Object.keys(budget).length > 0) body.budget = budget;
  if (options.model !== undefined) body.model = options.model;
  if (options.push || options.pullRequest) body.push = true;
  if (options.pullRequest) body.pull_request = { draft: options.draft ?? false, ...(options.base !== undefined ? { base: options.base } : {}) };
  return body;
}

export function registerTaskCommands(program: Command): void {
  const task = program.command('task').description('Create, follow and manage tasks');

  addConnectionOptions(
    task
      .command('create')
      .description('Create a task (prompt as an argument, from --file, or "-" for stdin)')
      .argument('[prompt]', 'what the task should do; "-" reads it from stdin')
      .option('--file <file>', 'read the prompt from a file ("-" for stdin)')
      .option('--harness <harness>', `the agent that runs the task: ${HARNESSES.join(', ')}, or command:NAME (configured on the worker)`, parseHarness)
      .option('--env <name|id>', 'take the recipe (image, repositories, setup) from this environment; the flags below override its fields', parseEnvironment)
      .option('--repo <url[#ref]>', 'repository to clone, optionally #branch/tag; repeatable (replaces the environment\'s list)', parseRepo)
      .option('--setup <command>', 'setup command run after cloning; repeatable, in order (replaces the environment\'s list)', collect)
      .option('--image <image>', 'OCI image the task runs in (docker backend)', parseImage)
      .option('--cpus <n>', "CPUs for the task, fractions allowed (docker backend, up to the worker's docker.max_cpus; replaces the environment's)", parseCpus)
      .option('--memory <size>', "memory for the task: 512m, 2g, 1.5g or bytes (docker backend, up to the worker's docker.max_memory; replaces the environment's)", parseMemory)
      .option('--max-turns <n>', 'stop after this many model turns (work so far is committed)', parseBudget('--max-turns', MAX_BUDGET_TURNS))
      .option('--max-seconds <duration>', 'stop the agent after this long (600, 90s, 30m, 2h; work so far is committed)', parseMaxSeconds)
      .option('--max-tokens <n>', 'stop after this many model tokens, input plus output (work so far is committed)', parseBudget('--max-tokens', MAX_BUDGET_TOKENS))
      .option('--model <model>', 'model to ask for (default: the worker\'s default route)', parseModel)
      .option('--push', 'push the result branch (airlock/<id>) to the remote')
      .option('--pull-request', 'open a pull/merge request for the pushed branch (implies --push)')
      .option('--draft', 'with --pull-request: open it as a draft')
      .option('--base <ref>', 'with --pull-request: the branch to merge into (default: the ref the task started from)', parseBase)
      .option('--worker-id <id>', 'run only on this worker', parseWorkerId('--worker-id'))
      .option('--timeout <seconds>', 'stop the task after this long (600, 90s, 30m, 2h)', parseTimeout)
      .option('--title <title>', 'a short name shown in lists', parseTitle)
      .option('--wait', 'follow the transcript; exit 0 if the task succeeds, 1 if it fails, 130 if cancelled')
      .option('--json', 'print the task as JSON (with --wait: transcript events as JSON lines, then the final task)'),
  ).action(async (promptArg: string | undefined, options: CreateOptions) => {
    if (!options.pullRequest && (options.draft || options.base !== undefined)) {
      throw new Error(`${options.draft ? '--draft' : '--base'} only applies to a pull request — add --pull-request`);
    }
    const prompt = await readPrompt(promptArg, options.file);
    const body = taskRequest(prompt, options);
    checkRequest(body);
    const client = await clientFor(options);
    if (options.env !== undefined) body.environment_id = await resolveEnvironment(client, options.env);
    const created = await client.createTask(body);
    if (!options.wait) {
      if (options.json) printJson(created);
      else {
        printLine(created.id);
        note(`task ${created.id} is ${created.state}; follow it with: airlock task logs ${created.id} -f`);
      }
      return;
    }
    if (!options.json) note(`task ${created.id} is ${created.state}; waiting for it to finish (Ctrl-C stops waiting, not the task)`);
    const final = await followTask(client, created.id, options.json ?? false);
    if (options.json) printJson(final);
    else note(describeOutcome(final));
    process.exitCode = exitCodeOf(final);
  });

  addConnectionOptions(
    task
      .command('list')
      .description("List the team's tasks, newest first")
      .addOption(new Option('--state <state>', 'only tasks in this state').choices(TASK_STATES))
      .option('--worker-id <id>', 'only tasks routed to this worker', parseWorkerId('--worker-id'))
      .option('--limit <n>', `tasks per page, 1–${MAX_PAGE} (default 50)`, parseLimit)
      .option('--all', 'fetch every page')
      .option('--json', 'print JSON'),
  ).action(async (options: ListOptions) => {
    const client = await clientFor(options);
    const query = {
      ...(options.state ? { state: options.state } : {}),
      ...(options.workerId ? { workerId: options.workerId } : {}),
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
    };
    let page = await client.listTasks(query);
    const tasks = [...page.tasks];
    while (options.all && page.next_cursor) {
      page = await client.listTasks({ ...query, cursor: page.next_cursor });
      tasks.push(...page.tasks);
    }
    if (options.json) {
      printJson({ tasks, next_cursor: page.next_cursor });
      return;
    }
    if (tasks.length === 0) {
      note('no tasks' + (options.state || options.workerId ? ' match the filters' : ' yet — create one with: airlock task create "…"'));
      return;
    }
    printLine(taskRows(tasks));
    if (page.next_cursor) note(`(more tasks: use --all, or a larger --limit)`);
  });

  addConnectionOptions(task.command('show').description('Show a task and its executions').argument('<id>', 'task id').option('--json', 'print JSON')).action(
    async (id: string, options: ConnectionFlags & { json?: boolean }) => {
      const client = await clientFor(options);
      const view = await client.getTask(checkTaskId(id));
      if (options.json) printJson(view);
      else showTask(view);
    },
  );

  addConnectionOptions(task.command('diff').description("Print the task's diff (plain unified diff: pipe it to `git apply`)").argument('<id>', 'task id')).action(
    async (id: string, options: ConnectionFlags) => {
      const client = await clientFor(options);
      const diff = await client.getTaskDiff(checkTaskId(id));
      process.stdout.write(diff.text);
      if (diff.truncated) note(`airlock: the diff was cut at the reporting limit and will not apply as is — fetch the pushed branch, or the full diff from the worker`);
    },
  );

  addConnectionOptions(
    task
      .command('logs')
      .description("Print a task's transcript output")
      .argument('<id>', 'task id')
      .option('-f, --follow', 'keep printing as the task runs, until it ends')
      .option('--json', 'print events as JSON (an array; with --follow, one event per line)'),
  ).action(async (id: string, options: ConnectionFlags & { follow?: boolean; json?: boolean }) => {
    const client = await clientFor(options);
    checkTaskId(id);
    if (options.follow) {
      await followTask(client, id, options.json ?? false);
      return;
    }
    const events = await client.transcript(id);
    if (options.json) printJson(events);
    else events.forEach(printEvent);
  });

  addConnectionOptions(task.command('cancel').description('Cancel a task').argument('<id>', 'task id').option('--json', 'print the task as JSON')).action(
    async (id: string, options: ConnectionFlags & { json?: boolean }) => {
      const client = await clientFor(options);
      const view = await client.cancelTask(checkTaskId(id));
      if (options.json) printJson(view);
      else if (view.state === 'cancelled') printLine(`task ${view.id} is cancelled`);
      else if (isTerminal(view.state)) printLine(`task ${view.id} had already ${view.state === 'succeeded' ? 'succeeded' : 'failed'}; nothing to cancel`);
      else printLine(`cancellation requested: task ${view.id} is ${view.state}, and its worker is stopping it`);
    },
  );

  addConnectionOptions(
    task.command('say').description('Send a follow-up message to a task').argument('<id>', 'task id').argument('<text>', 'the message').option('--json', 'print the result as JSON'),
  ).action(async (id: string, text: string, options: ConnectionFlags & { json?: boolean }) => {
    if (text.trim() === '') throw new Error('the message is empty — say something');
    const client = await clientFor(options);
    const result = await client.sendMessage(checkTaskId(id), text);
    if (options.json) printJson(result);
    else if (result.delivered) printLine(`message ${result.id} delivered to the running execution`);
    else printLine(`message ${result.id} stored; the task has no running execution to deliver it to right now`);
  });
}
