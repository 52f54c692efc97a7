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
import { HARNESSES, MAX_PROMPT_BYTES, MAX_TASK_TIMEOUT_SECONDS, TaskId, WorkerId, type EventView, type Harness, type TaskView } from '../protocol/task.js';
import { addConnectionOptions, clientFor, type ApiClient, type ConnectionFlags, type NewTask } from './client.js';
import { formatAge, formatDuration, formatTable, note, printJson, printJsonLine, printLine, summarize } from './output.js';

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

/** Print an event for people: output text to the stream it came from; the rest is not printed. */
function printEvent(event: EventView): void {
  if (event.kind !== 'output') return;
  const text = event.data.text;
  if (typeof text !== 'string') return;
  (event.data.stream === 'stderr' ? process.stderr : process.stdout).write(text);
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
  for (const [k, v] of rows) printLine(`${`${k}:`.padEnd(11)}${v}`);
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

// ── commands ──

interface CreateOptions extends ConnectionFlags {
  file?: string;
  harness?: Harness;
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

export function registerTaskCommands(program: Command): void {
  const task = program.command('task').description('Create, follow and manage tasks');

  addConnectionOptions(
    task
      .command('create')
      .description('Create a task (prompt as an argument, from --file, or "-" for stdin)')
      .argument('[prompt]', 'what the task should do; "-" reads it from stdin')
      .option('--file <file>', 'read the prompt from a file ("-" for stdin)')
      .addOption(new Option('--harness <harness>', 'the agent program that runs the task').choices(HARNESSES))
      .option('--worker-id <id>', 'run only on this worker', parseWorkerId('--worker-id'))
      .option('--timeout <seconds>', 'stop the task after this long (600, 90s, 30m, 2h)', parseTimeout)
      .option('--title <title>', 'a short name shown in lists', parseTitle)
      .option('--wait', 'follow the transcript; exit 0 if the task succeeds, 1 if it fails, 130 if cancelled')
      .option('--json', 'print the task as JSON (with --wait: transcript events as JSON lines, then the final task)'),
  ).action(async (promptArg: string | undefined, options: CreateOptions) => {
    const prompt = await readPrompt(promptArg, options.file);
    const client = await clientFor(options);
    const body: NewTask = { prompt };
    if (options.harness) body.harness = options.harness;
    if (options.workerId) body.worker_id = options.workerId;
    if (options.timeout !== undefined) body.timeout_seconds = options.timeout;
    if (options.title !== undefined) body.title = options.title;
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
