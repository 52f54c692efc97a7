/**
 * Git credentials for the agent's clone and push, fetched from the task gateway on demand.
 *
 * git runs this agent runtime's own `git-credential get` (set as `credential.helper` in the git
 * step's command-line config: `<node> <bin/airlock.js> agent git-credential` from the package,
 * `<node> <agent.mjs> git-credential` from the bundle — whichever entry started this process, as
 * its caller says in `GitCredentials.helper`). That helper does not hold the task token: it asks
 * a *credential bridge* the agent opens for the duration of one git step — a Unix socket in the
 * agent's private temp directory, guarded by a random one-step key — and the bridge asks the
 * gateway (`POST /v1/git/credential`) with the task token, which never leaves the agent process.
 *
 * Invariants:
 * - The bridge exists only while the agent's own clone or push runs (no task code runs then);
 *   the harness and setup commands never get a bridge, a key or a helper setting.
 * - Credentials are never written anywhere: not to .git/config, a remote URL, argv, a file or
 *   the transcript. They pass from the gateway through the bridge to git's stdin pipe.
 * - The helper answers only `get`; `store`/`erase` are ignored (no cache, no store).
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { constantTimeEqual } from '../../lib/constant-time.js';
import { GATEWAY_PATHS, GitCredential, type GitCredentialQuery } from '../../protocol/gateway.js';
import { GatewayRequestError, type GatewayClient } from '../report/client.js';
import { BRIDGE_ENV, HELPER_TIMEOUT_MS, MAX_LINE_BYTES } from './credential-helper.js';

/** Unix socket paths are limited to 107 bytes; keep a margin. */
const MAX_SOCKET_PATH = 100;

/** Asks the gateway for credentials; null when the worker has none for that URL. */
export type CredentialSource = (query: GitCredentialQuery) => Promise<GitCredential | null>;

export function gatewayCredentialSource(client: GatewayClient): CredentialSource {
  return async (query) => {
    try {
      return GitCredential.parse(await client.request('POST', GATEWAY_PATHS.gitCredential, query));
    } catch (err) {
      if (err instanceof GatewayRequestError && err.status === 404) return null;
      throw err;
    }
  };
}

/** What a git step needs to get credentials: where they come from, and the helper git runs. */
export interface GitCredentials {
  source: CredentialSource;
  /**
   * argv of the credential helper, without the action git appends: this runtime's own
   * `git-credential` command (agent/commands.ts). Never derived from import.meta.url here: once
   * bundled, that is the bundle's URL, not this file's.
   */
  helper: readonly string[];
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** What one bridge saw: for error messages ("the worker has no credentials for …"). */
export interface BridgeRecord {
  asked: string[];
  refused: string[];
  errors: string[];
}

export class CredentialBridge {
  private readonly key = randomBytes(32).toString('base64url');
  readonly record: BridgeRecord = { asked: [], refused: [], errors: [] };

  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
    private readonly helper: readonly string[],
  ) {}

  /** Open a bridge for one git step. Always `close()` it when the step ends. */
  static async open(credentials: GitCredentials, tmpdir: string = os.tmpdir()): Promise<CredentialBridge> {
    if (credentials.helper.length === 0) throw new Error('the git credential helper command is empty — pass the agent runtime\'s own command to runAgent (selfCommand)');
    const name = `airlock-gc-${randomBytes(8).toString('hex')}.sock`;
    let socketPath = path.join(tmpdir, name);
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) socketPath = path.join('/tmp', name);
    const server = net.createServer();
    const bridge = new CredentialBridge(server, socketPath, credentials.helper);
    server.on('connection', (socket) => bridge.serve(socket, credentials.source));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: socketPath, readableAll: false, writableAll: false }, () => resolve());
    });
    return bridge;
  }

  /** Command-line git settings that make git ask this bridge (and nothing else) for credentials. */
  gitSettings(): Array<[string, string]> {
    // `!` makes git run it through the shell, with the action (get/store/erase) appended.
    const helper = `!${this.helper.map(shellQuote).join(' ')}`;
    return [
      ['credential.helper', ''], // forget every helper from config files (caches, stores, the host's)
      ['credential.helper', helper],
      ['credential.useHttpPath', 'true'],
    ];
  }

  /** The variables the helper needs (added to the git step's environment only). */
  env(): Record<string, string> {
    return { [BRIDGE_ENV.socket]: this.socketPath, [BRIDGE_ENV.key]: this.key };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.socketPath, { force: true });
  }

  private serve(socket: net.Socket, source: CredentialSource): void {
    socket.setTimeout(HELPER_TIMEOUT_MS, () => socket.destroy());
    socket.on('error', () => undefined);
    readLine(socket)
      .then(async (line) => {
        const request = JSON.parse(line) as { key?: unknown; protocol?: unknown; host?: unknown; path?: unknown };
        if (typeof request.key !== 'string' || !constantTimeEqual(request.key, this.key)) {
          socket.end(`${JSON.stringify({ error: 'wrong key' })}\n`);
          return;
        }
        if (typeof request.protocol !== 'string' || typeof request.host !== 'string') throw new Error('protocol and host are required');
        const query: GitCredentialQuery = { protocol: request.protocol, host: request.host };
        if (typeof request.path === 'string' && request.path.length > 0) query.path = request.path;
        const where = `${query.protocol}://${query.host}/${query.path ?? ''}`;
        this.record.asked.push(where);
        const credential = await source(query).catch((err: unknown) => {
          this.record.errors.push(`${where}: ${err instanceof Error ? err.message : String(err)}`);
          return null;
        });
        if (!credential) this.record.refused.push(where);
        socket.end(`${JSON.stringify(credential ? { username: credential.username, password: credential.password } : {})}\n`);
      })
      .catch(() => socket.destroy());
  }
}

function readLine(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      buffer += text;
      const newline = buffer.indexOf('\n');
      if (newline !== -1) resolve(buffer.slice(0, newline));
      else if (buffer.length > MAX_LINE_BYTES) reject(new Error('line too long'));
    });
    socket.on('end', () => reject(new Error('closed before a full line')));
  });
}
