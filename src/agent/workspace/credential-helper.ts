/**
 * `airlock agent git-credential <action>`: the git credential helper the agent's clone and push
 * use (see credentials.ts for the bridge it talks to). It holds no secret of its own: it relays
 * git's question to the bridge named in its environment and prints the answer on stdout, which
 * is a pipe to git. Kept free of heavy imports: git starts it for every credential it needs.
 */
import net from 'node:net';

/** The agent runtime's subcommand git runs as its credential helper (`<runtime> git-credential get`). */
export const HELPER_COMMAND = 'git-credential';
/** Where the helper finds the bridge, and the key it proves itself with. */
export const BRIDGE_ENV = { socket: 'AIRLOCK_GIT_CREDENTIAL_SOCKET', key: 'AIRLOCK_GIT_CREDENTIAL_KEY' } as const;
export const MAX_LINE_BYTES = 16 * 1024;
export const HELPER_TIMEOUT_MS = 30_000;

/** git's credential format: `key=value` lines up to a blank line. */
export function parseCredentialInput(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line.length === 0) break;
    const eq = line.indexOf('=');
    if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return fields;
}

/**
 * `airlock agent git-credential <action>`: git's credential helper protocol. For `get`, asks the
 * bridge named in the environment and prints `username=`/`password=`, or nothing (git then
 * reports that authentication failed). Other actions are accepted and ignored. Never prompts.
 */
export async function runCredentialHelper(options: {
  action: string | undefined;
  env: NodeJS.ProcessEnv;
  stdin: NodeJS.ReadableStream;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}): Promise<number> {
  let input = '';
  for await (const chunk of options.stdin) {
    input += chunk.toString();
    if (input.length > MAX_LINE_BYTES) break;
  }
  if (options.action !== 'get') return 0;
  const socketPath = options.env[BRIDGE_ENV.socket];
  const key = options.env[BRIDGE_ENV.key];
  if (!socketPath || !key) {
    options.stderr('airlock agent git-credential: no credential bridge in this environment — only the agent runtime\'s own clone and push can ask for git credentials\n');
    return 0;
  }
  const fields = parseCredentialInput(input);
  if (!fields.protocol || !fields.host) return 0;
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(socketPath);
    let text = '';
    socket.setEncoding('utf8');
    socket.setTimeout(HELPER_TIMEOUT_MS, () => socket.destroy(new Error('the credential bridge did not answer')));
    socket.on('connect', () => socket.write(`${JSON.stringify({ key, protocol: fields.protocol, host: fields.host, path: fields.path })}\n`));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  }).catch((err: unknown) => {
    options.stderr(`airlock agent git-credential: ${err instanceof Error ? err.message : String(err)}\n`);
    return '';
  });
  let parsed: { username?: unknown; password?: unknown } = {};
  try {
    parsed = JSON.parse(answer.trim() || '{}') as typeof parsed;
  } catch {
    return 0;
  }
  if (typeof parsed.username === 'string' && typeof parsed.password === 'string' && !/[\n\0]/.test(parsed.username + parsed.password)) {
    options.stdout(`username=${parsed.username}\npassword=${parsed.password}\n`);
  }
  return 0;
}
