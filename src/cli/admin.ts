/**
 * `airlock admin …`: teams and API keys, done directly on the server's store (`<data-dir>/
 * airlock.db`) with the server's secret (`<data-dir>/secret.key`) — the way to bootstrap a fresh
 * install, and safe while the server runs (SQLite in WAL mode; the secret file is shared).
 *
 * Invariants: a key is printed once, at creation, and never again (the store holds only its
 * HMAC); every change is written to the audit log with the actor `admin-cli`.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { isoTime, systemClock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';
import { TeamName } from '../protocol/task.js';
import { ROLES, type Role, type Store, type TeamRecord } from '../server/store/store.js';
import { formatTable, note, printJson, printLine } from './output.js';

const ACTOR = 'admin-cli';
/** The file the server uses in its data directory (server/server.ts). */
const DATABASE_FILE = 'airlock.db';
/** Key names are labels for people ("ci", "alice's laptop"), not documents. */
const MAX_KEY_NAME_CHARS = 100;
const KEY_ID = /^key_[a-z2-7]{20}$/;

function parseTeamName(value: string): string {
  const result = TeamName.safeParse(value);
  if (!result.success) throw new InvalidArgumentError(`team names ${result.error.issues[0]?.message ?? 'are invalid'}, 1–63 characters (e.g. platform-team).`);
  return value;
}

function parseKeyName(value: string): string {
  if (value.trim() === '' || value.length > MAX_KEY_NAME_CHARS || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new InvalidArgumentError(`--name must be 1–${MAX_KEY_NAME_CHARS} printable characters (e.g. "ci" or "alice laptop").`);
  }
  return value;
}

function dataDirOption(): Option {
  return new Option('--data-dir <dir>', "the server's data directory (what `airlock server --data-dir` uses)").default('./.airlock/server');
}

/**
 * Open the server's store. `create` (create-team) may start a fresh data directory; every other
 * command needs the existing database, so a mistyped --data-dir fails instead of creating one.
 */
async function withStore<T>(dataDir: string, create: boolean, run: (store: Store) => Promise<T>): Promise<T> {
  const dir = resolve(dataDir);
  const file = join(dir, DATABASE_FILE);
  if (create) mkdirSync(dir, { recursive: true, mode: 0o700 });
  else if (!existsSync(file)) {
    throw new Error(`no Airlock database at ${file} — pass the --data-dir the server uses, or create a team first with \`airlock admin create-team NAME --data-dir DIR\``);
  }
  // Loaded on use: the CLI starts fast for commands that never touch a store.
  const { openSqliteStore } = await import('../server/store/sqlite/index.js');
  const store = await openSqliteStore({ path: file });
  try {
    await store.migrate();
    return await run(store);
  } finally {
    await store.close();
  }
}

async function teamByName(store: Store, name: string): Promise<TeamRecord> {
  const team = await store.getTeamByName(name);
  if (!team) throw new Error(`no team named "${name}" — list the teams you created, or create it with \`airlock admin create-team ${name}\``);
  return team;
}

interface AdminOptions {
  dataDir: string;
  json?: boolean;
}

export function registerAdminCommands(program: Command): void {
  const admin = program.command('admin').description("Manage teams and API keys directly in the server's data directory");

  admin
    .command('create-team')
    .description('Create a team')
    .argument('<name>', 'lowercase letters, digits and "-"', parseTeamName)
    .addOption(dataDirOption())
    .option('--json', 'print the team as JSON')
    .action(async (name: string, options: AdminOptions) => {
      const team = await withStore(options.dataDir, true, async (store) => {
        if (await store.getTeamByName(name)) throw new Error(`a team named "${name}" already exists — pick another name`);
        const now = systemClock.now();
        const created = await store.createTeam({ id: newId('team'), name, now });
        await store.appendAudit({ teamId: created.id, actor: ACTOR, action: 'team.create', target: created.id, detail: { name }, at: now });
        return created;
      });
      if (options.json) printJson({ id: team.id, name: team.name, created_at: isoTime(team.createdAt) });
      else {
        printLine(`created team ${team.name} (${team.id})`);
        note(`next: airlock admin create-api-key --team ${team.name} --role admin --data-dir ${options.dataDir}`);
      }
    });

  admin
    .command('create-api-key')
    .description('Create an API key for a team (shown once)')
    .requiredOption('--team <name>', 'the team the key belongs to', parseTeamName)
    .addOption(new Option('--role <role>', 'admin and member: the API and CLI; worker: connecting workers').choices(ROLES).makeOptionMandatory())
    .option('--name <name>', 'a label to recognise the key by (e.g. "ci")', parseKeyName)
    .addOption(dataDirOption())
    .option('--json', 'print {"key","id","team","role"} as JSON')
    .action(async (options: AdminOptions & { team: string; role: Role; name?: string }) => {
      const minted = await withStore(options.dataDir, false, async (store) => {
        const team = await teamByName(store, options.team);
        const { loadOrCreateServerSecret, mintApiKey } = await import('../server/auth/keys.js');
        const secret = loadOrCreateServerSecret(resolve(options.dataDir));
        const now = systemClock.now();
        const result = await mintApiKey(store, secret, { teamId: team.id, role: options.role, name: options.name ?? null, now });
        await store.appendAudit({
          teamId: team.id,
          actor: ACTOR,
          action: 'api_key.create',
          target: result.record.id,
          detail: { role: options.role, name: options.name ?? null },
          at: now,
        });
        return result;
      });
      if (options.json) {
        printJson({ key: minted.key, id: minted.record.id, team: options.team, role: minted.record.role });
        return;
      }
      printLine(minted.key);
      note(`${options.role} key ${minted.record.id} for team ${options.team}: store it now, it is not shown again (revoke with \`airlock admin revoke-api-key ${minted.record.id} --team ${options.team}\`)`);
    });

  admin
    .command('list-api-keys')
    .description("List a team's API keys (ids and names; keys themselves are never stored)")
    .requiredOption('--team <name>', 'the team', parseTeamName)
    .addOption(dataDirOption())
    .option('--json', 'print JSON')
    .action(async (options: AdminOptions & { team: string }) => {
      const keys = await withStore(options.dataDir, false, async (store) => store.listApiKeys((await teamByName(store, options.team)).id));
      const views = keys.map((k) => ({
        id: k.id,
        team: options.team,
        role: k.role,
        name: k.name,
        created_at: isoTime(k.createdAt),
        revoked_at: k.revokedAt === null ? null : isoTime(k.revokedAt),
      }));
      if (options.json) {
        printJson(views);
        return;
      }
      if (views.length === 0) {
        note(`team ${options.team} has no API keys — create one with \`airlock admin create-api-key --team ${options.team} --role admin\``);
        return;
      }
      printLine(formatTable(['ID', 'ROLE', 'NAME', 'CREATED', 'REVOKED'], views.map((v) => [v.id, v.role, v.name ?? '-', v.created_at, v.revoked_at ?? '-'])));
    });

  admin
    .command('revoke-api-key')
    .description('Revoke an API key: it stops working at once')
    .argument('<id>', 'the key id (key_…, see list-api-keys)')
    .requiredOption('--team <name>', 'the team the key belongs to', parseTeamName)
    .addOption(dataDirOption())
    .action(async (id: string, options: AdminOptions & { team: string }) => {
      if (id.startsWith('alk_')) {
        // Never echo a key back to the terminal (or a CI log).
        throw new Error('that is an API key, not a key id — pass its id: key_ followed by the 20 characters after "alk_" (see `airlock admin list-api-keys`)');
      }
      if (!KEY_ID.test(id)) {
        throw new Error(`"${id.slice(0, 80)}" is not a key id — pass the id shown by \`airlock admin list-api-keys\` (key_…)`);
      }
      await withStore(options.dataDir, false, async (store) => {
        const team = await teamByName(store, options.team);
        const now = systemClock.now();
        if (!(await store.revokeApiKey(team.id, id, now))) {
          throw new Error(`team ${options.team} has no API key ${id} — see \`airlock admin list-api-keys --team ${options.team}\``);
        }
        await store.appendAudit({ teamId: team.id, actor: ACTOR, action: 'api_key.revoke', target: id, detail: {}, at: now });
      });
      printLine(`revoked ${id}`);
    });
}
