/**
 * The task's image on the engine, by pull policy: `if-not-present` (pull only when the engine
 * lacks it), `always` (pull every time: a moving tag is re-resolved), `never` (the image must
 * already be there). Credentials come from the worker's own Docker client config
 * (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): `auths` entries and credential
 * helpers (`credHelpers`, `credsStore`), as the Docker CLI reads them.
 *
 * Invariants: registry credentials go to the engine in the pull request only — never into a
 * message, a log line or the transcript; a failed pull is an `image_pull` failure carrying the
 * registry's own words.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { PullPolicy } from './options.js';

/** Docker Hub's key in config.json, whatever the image calls it. */
const DOCKER_HUB = 'https://index.docker.io/v1/';
/** A credential helper must answer within this time. */
const HELPER_TIMEOUT_MS = 10_000;
/** Pull progress lines in the transcript: one per layer and status change, at most this many. */
const MAX_PROGRESS_LINES = 200;

export class ImagePullError extends Error {}

export interface RegistryAuth {
  username?: string;
  password?: string;
  identitytoken?: string;
  serveraddress: string;
}

/** The registry host an image reference points at (`docker.io` when it names none). */
export function registryOf(image: string): string {
  const first = image.split('/')[0]!;
  if (image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return first;
  return 'docker.io';
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** The worker's credentials for `registry`, or undefined when it has none. */
export async function registryAuth(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<RegistryAuth | undefined> {
  const dir = env.DOCKER_CONFIG ?? path.join(env.HOME ?? homedir(), '.docker');
  let config: DockerConfigFile;
  try {
    config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as DockerConfigFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ImagePullError(`the worker's Docker config ${path.join(dir, 'config.json')} cannot be read: ${(err as Error).message} — fix or remove it`);
  }
  const keys = registry === 'docker.io' ? [DOCKER_HUB, 'docker.io', 'index.docker.io', 'registry-1.docker.io'] : [registry, `https://${registry}`, `http://${registry}`];
  const helper = keys.map((k) => config.credHelpers?.[k]).find(Boolean) ?? config.credsStore;
  if (helper) {
    const fromHelper = await askHelper(helper, registry === 'docker.io' ? DOCKER_HUB : registry);
    if (fromHelper) return fromHelper;
  }
  for (const key of keys) {
    const entry = config.auths?.[key];
    if (!entry) continue;
    const serveraddress = registry === 'docker.io' ? DOCKER_HUB : registry;
    if (entry.identitytoken) return { identitytoken: entry.identitytoken, serveraddress };
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), serveraddress };
    }
    if (entry.username && entry.password) return { username: entry.username, password: entry.password, serveraddress };
  }
  return undefined;
}

/** `docker-credential-<helper> get`, the protocol every Docker credential helper speaks. */
function askHelper(helper: string, server: string): Promise<RegistryAuth | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn(`docker-credential-${helper}`, ['get'], { stdio: ['pipe', 'pipe', 'pipe'], timeout: HELPER_TIMEOUT_MS });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new ImagePullError(`the Docker credential helper docker-credential-${helper} could not run: ${e.message} — install it, or change credsStore/credHelpers in the worker's Docker config`)));
    child.on('close', (code) => {
      if (code !== 0) {
        // "credentials not found" is an answer, not a failure: pull anonymously.
        if (/not found/i.test(out + err)) return resolve(undefined);
        return reject(new ImagePullError(`the Docker credential helper docker-credential-${helper} failed (exit ${code}): ${err.trim().slice(0, 300)}`));
      }
      try {
        const answer = JSON.parse(out) as { Username?: string; Secret?: string };
        if (!answer.Secret) return resolve(undefined);
        resolve(answer.Username === '<token>' ? { identitytoken: answer.Secret, serveraddress: server } : { username: answer.Username ?? '', password: answer.Secret, serveraddress: server });
      } catch {
        reject(new ImagePullError(`the Docker credential helper docker-credential-${helper} answered something that is not JSON`));
      }
    });
    child.stdin.end(server);
  });
}

/** The image's configured user (`Config.User`, '' for root), or undefined when the engine lacks it. */
async function imageUser(docker: Dockerode, image: string): Promise<string | undefined> {
  try {
    return ((await docker.getImage(image).inspect()) as { Config?: { User?: string } }).Config?.User ?? '';
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  }
}

/**
 * Make `image` available on the engine according to `policy`, and say which user it runs as.
 * Progress goes to `progress` (short lines for the transcript). Throws ImagePullError with the
 * registry's message.
 */
export async function ensureImage(docker: Dockerode, image: string, policy: PullPolicy, progress: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<{ pulled: boolean; user: string }> {
  const present = policy === 'always' ? undefined : await imageUser(docker, image);
  if (present !== undefined) return { pulled: false, user: present };
  if (policy === 'never') {
    throw new ImagePullError(`the image ${image} is not on the Docker Engine and the worker's pull_policy is never — load it on the worker's host (docker pull / docker load), or change docker.pull_policy`);
  }
  const auth = await registryAuth(registryOf(image), env);
  progress(`pulling image ${image}${auth ? ` (with the worker's credentials for ${registryOf(image)})` : ''}\n`);
  let stream: NodeJS.ReadableStream;
  try {
    stream = (await docker.pull(image, auth ? { authconfig: auth } : {}));
  } catch (err) {
    throw new ImagePullError(`could not pull ${image}: ${engineMessage(err)}`);
  }
  let lines = 0;
  const seen = new Map<string, string>();
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null) => (err ? reject(new ImagePullError(`could not pull ${image}: ${engineMessage(err)}`)) : resolve()),
      (event: { status?: string; id?: string; error?: string }) => {
        if (event.error) return; // reported by the finish callback
        const status = event.status ?? '';
        // Per-layer byte counters change constantly: one line per layer and status.
        if (!status || (event.id && seen.get(event.id) === status)) return;
        if (event.id) seen.set(event.id, status);
        if (lines++ < MAX_PROGRESS_LINES) progress(`${event.id ? `${event.id}: ` : ''}${status}\n`);
      },
    );
  });
  return { pulled: true, user: (await imageUser(docker, image)) ?? '' };
}

/** The engine's (and through it the registry's) own words for a failure. */
export function engineMessage(err: unknown): string {
  const e = err as { json?: { message?: string }; reason?: string; message?: string };
  const message = e.json?.message ?? e.message ?? String(err);
  return message.replace(/^\(HTTP code \d+\) [a-z ]+ - /, '').trim();
}
