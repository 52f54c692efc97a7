/**
 * `airlock env …`: create, list, show, update and delete environments (a team's named recipe for
 * tasks) through the API client. Flags are checked here with the protocol's own schemas, so an
 * error names the flag before any request is sent; the server checks everything again.
 */
import type { Command } from 'commander';
import { EnvironmentId, EnvironmentName, MAX_SETUP_TIMEOUT_SECONDS, type EnvironmentUpdate, type EnvironmentView, type Repository } from '../protocol/environment.js';
import { addConnectionOptions, clientFor, type ConnectionFlags, type EnvironmentCreateInput } from './client.js';
import { formatTable, note, printJson, printLine } from './output.js';
import { check, collect, parseCpus, parseImage, parseMemory, parseRepo, parseSetupTimeout, resourcesFromFlags, variableName } from './recipe-flags.js';

// ── flag parsers (each error names the flag and the fix; the recipe ones are shared with `task create`) ──

function parseName(value: string): string {
  return check(EnvironmentName, '--name', value, 'web-app');
}

function checkEnvironmentId(id: string): string {
  if (!EnvironmentId.safeParse(id).success) throw new Error(`"${id}" is not an environment id — environment ids look like env_ followed by 20 letters and digits (see \`airlock env list\`)`);
  return id;
}

interface FieldFlags {
  image?: string;
  repo?: Repository[];
  setup?: string[];
  setupTimeout?: number;
  secret?: string[];
  env?: string[];
  cpus?: number;
  memory?: string;
}

/** The API fields the shared flags set (create and update take the same ones). */
function fieldsFromFlags(options: FieldFlags): Omit<EnvironmentCreateInput, 'name'> {
  const fields: Omit<EnvironmentCreateInput, 'name'> = {};
  if (options.image !== undefined) fields.image = options.image;
  if (options.repo) fields.repositories = options.repo;
  if (options.setup) fields.setup_commands = options.setup;
  if (options.setupTimeout !== undefined) fields.setup_timeout_seconds = options.setupTimeout;
  if (options.secret) fields.secret_names = options.secret;
  if (options.env) fields.env_names = options.env;
  const resources = resourcesFromFlags(options);
  if (resources) fields.resources = resources;
  return fields;
}

function addFieldOptions(command: Command): Command {
  return command
    .option('--image <image>', 'OCI image the task runs in (docker backend)', parseImage)
    .option('--repo <url[#ref]>', 'repository to clone (https://, ssh://, user@host:path or an absolute path), optionally #branch/tag; repeatable', parseRepo)
    .option('--setup <command>', 'setup command run after cloning; repeatable, run in order', collect)
    .option('--setup-timeout <seconds>', `how long setup may take, 1–${MAX_SETUP_TIMEOUT_SECONDS} s`, parseSetupTimeout)
    .option('--secret <NAME>', 'name of a secret variable the worker supplies (never its value); repeatable', variableName('--secret'))
    .option('--env <NAME>', 'name of a plain variable the worker passes through; repeatable', variableName('--env'))
    .option('--cpus <n>', "tasks' CPUs, fractions allowed (docker backend, up to the worker's docker.max_cpus)", parseCpus)
    .option('--memory <size>', "tasks' memory: 512m, 2g, 1.5g or bytes (docker backend, up to the worker's docker.max_memory)", parseMemory)
    .option('--json', 'print JSON');
}

function show(view: EnvironmentView): void {
  const lines = [
    `id:             ${view.id}`,
    `name:           ${view.name}`,
    `image:          ${view.image ?? '-'}`,
    `setup timeout:  ${view.setup_timeout_seconds === null ? '-' : `${view.setup_timeout_seconds}s`}`,
    `secrets:        ${view.secret_names.join(', ') || '-'}`,
    `variables:      ${view.env_names.join(', ') || '-'}`,
    ...(view.resources?.cpus !== undefined ? [`cpus:           ${view.resources.cpus}`] : []),
    ...(view.resources?.memory !== undefined ? [`memory:         ${view.resources.memory}`] : []),
    'repositories:',
    ...(view.repositories.length ? view.repositories.map((r) => `  ${r.url}${r.ref ? ` @ ${r.ref}` : ''}`) : ['  -']),
    'setup commands:',
    ...(view.setup_commands.length ? view.setup_commands.map((c, i) => `  ${i + 1}. ${c}`) : ['  -']),
    `created:        ${view.created_at}`,
    `updated:        ${view.updated_at}`,
  ];
  printLine(lines.join('\n'));
}

export function registerEnvCommands(program: Command): void {
  const env = program.command('env').description('Manage environments: named recipes (image, repositories, setup) for tasks');

  addConnectionOptions(addFieldOptions(env.command('create').description('Create an environment').argument('<name>', 'unique name in the team (lowercase letters, digits, "-")'))).action(
    async (name: string, options: ConnectionFlags & FieldFlags & { json?: boolean }) => {
      const body: EnvironmentCreateInput = { name: parseName(name), ...fieldsFromFlags(options) };
      const client = await clientFor(options);
      const created = await client.createEnvironment(body);
      if (options.json) printJson(created);
      else {
        printLine(created.id);
        note(`environment "${created.name}" created; show it with: airlock env show ${created.id}`);
      }
    },
  );

  addConnectionOptions(env.command('list').description("List the team's environments").option('--json', 'print JSON')).action(async (options: ConnectionFlags & { json?: boolean }) => {
    const client = await clientFor(options);
    const environments = await client.listEnvironments();
    if (options.json) {
      printJson({ environments });
      return;
    }
    if (environments.length === 0) {
      note('no environments yet — create one with: airlock env create NAME --repo URL');
      return;
    }
    printLine(
      formatTable(
        ['ID', 'NAME', 'IMAGE', 'REPOS', 'SETUP'],
        environments.map((e) => [e.id, e.name, e.image ?? '-', String(e.repositories.length), String(e.setup_commands.length)]),
      ),
    );
  });

  addConnectionOptions(env.command('show').description('Show an environment').argument('<id>', 'environment id').option('--json', 'print JSON')).action(
    async (id: string, options: ConnectionFlags & { json?: boolean }) => {
      const client = await clientFor(options);
      const view = await client.getEnvironment(checkEnvironmentId(id));
      if (options.json) printJson(view);
      else show(view);
    },
  );

  addConnectionOptions(
    addFieldOptions(env.command('update').description('Change an environment: list flags replace the whole list; --cpus/--memory change only that size field').argument('<id>', 'environment id').option('--name <name>', 'rename it', parseName)),
  ).action(async (id: string, options: ConnectionFlags & FieldFlags & { name?: string; json?: boolean }) => {
    const patch: EnvironmentUpdate = { ...(options.name !== undefined ? { name: options.name } : {}), ...fieldsFromFlags(options) };
    if (Object.keys(patch).length === 0) throw new Error('nothing to change — give at least one of --name, --image, --repo, --setup, --setup-timeout, --secret, --env, --cpus, --memory');
    const client = await clientFor(options);
    const view = await client.updateEnvironment(checkEnvironmentId(id), patch);
    if (options.json) printJson(view);
    else printLine(`environment ${view.id} ("${view.name}") updated`);
  });

  addConnectionOptions(env.command('delete').description('Delete an environment').argument('<id>', 'environment id')).action(async (id: string, options: ConnectionFlags) => {
    const client = await clientFor(options);
    await client.deleteEnvironment(checkEnvironmentId(id));
    printLine(`environment ${id} deleted`);
  });
}
