/**
 * Connecting to the Docker Engine (src/worker/backends/docker/engine.ts) for real: the default
 * socket, every way a configuration can be wrong, and a TLS round trip through a Node TLS server
 * that demands a client certificate and relays each connection to the real engine's socket —
 * the engine behind it is real, only its TCP listener is ours. Also proves the test image runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAirlockError } from '../../src/protocol/errors.js';
import { DEFAULT_SOCKET, connectEngine, type EngineEnv } from '../../src/worker/backends/docker/engine.js';
import { TEST_CONTAINER_LABEL, TEST_IMAGE, requireTestEngine } from '../support/docker.js';

async function failure(env: EngineEnv, opts?: { timeoutMs?: number }): Promise<Error> {
  try {
    await connectEngine(env, opts);
  } catch (err) {
    return err as Error;
  }
  throw new Error(`connectEngine(${JSON.stringify(env)}) succeeded; expected it to fail`);
}

/** A port nothing listens on: bind an ephemeral one, then let it go. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('the default socket', () => {
  it('connects and reports the engine version', async () => {
    const engine = await connectEngine({});
    expect(engine.target).toBe(`unix://${DEFAULT_SOCKET} (default socket)`);
    expect(engine.version).toMatch(/^\d+\.\d+/);
    expect(engine.apiVersion).toMatch(/^1\.\d+$/);
    expect(engine.os).toBe('linux');
    expect(engine.arch).not.toBe('unknown');
    // The returned client is usable as it is.
    expect((await engine.docker.info()).ID).toBeTruthy();
  });

  it('is also what DOCKER_HOST=unix:///var/run/docker.sock names', async () => {
    const engine = await connectEngine({ DOCKER_HOST: `unix://${DEFAULT_SOCKET}` });
    expect(engine.target).toBe(`unix://${DEFAULT_SOCKET} (DOCKER_HOST)`);
  });
});

describe('an engine that is not there', () => {
  it('names the missing socket', async () => {
    const err = await failure({ DOCKER_HOST: 'unix:///nonexistent.sock' });
    expect(isAirlockError(err) && err.code).toBe('unavailable');
    expect(err.message).toContain('unix:///nonexistent.sock (DOCKER_HOST)');
    expect(err.message).toMatch(/there is no socket at \/nonexistent\.sock — start dockerd/);
  });

  it('reports connection refused with the address', async () => {
    const port = await closedPort();
    const err = await failure({ DOCKER_HOST: `tcp://127.0.0.1:${port}` });
    expect(isAirlockError(err) && err.code).toBe('unavailable');
    expect(err.message).toContain(`tcp://127.0.0.1:${port} without TLS (DOCKER_HOST)`);
    expect(err.message).toContain(`connection refused at 127.0.0.1:${port}`);
  });

  it('gives up after the timeout when the listener never answers', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const started = Date.now();
      const err = await failure({ DOCKER_HOST: `tcp://127.0.0.1:${port}` }, { timeoutMs: 300 });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(err.message).toMatch(new RegExp(`tcp://127\\.0\\.0\\.1:${port} .*no answer within 0\\.3 s`));
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('a malformed configuration', () => {
  it.each([
    ['ssh://me@build-host', /DOCKER_HOST="ssh:\/\/me@build-host" uses the unsupported scheme ssh:\/\/ — use unix:\/\/\/path\/to\/docker\.sock, or tcp:\/\/host:port/],
    ['npipe:////./pipe/docker_engine', /uses npipe:\/\/, a Windows named pipe/],
    ['localhost:2375', /is not a URL with a scheme/],
    ['tcp://127.0.0.1:notaport', /is not a valid tcp:\/\/ address/],
    ['unix://var/run/docker.sock', /must name an absolute socket path/],
  ])('DOCKER_HOST=%s is refused, naming the variable', async (value, mentions) => {
    const err = await failure({ DOCKER_HOST: value });
    expect(isAirlockError(err) && err.code).toBe('validation');
    expect(isAirlockError(err) && err.details).toEqual({ field: 'DOCKER_HOST' });
    expect(err.message).toMatch(mentions);
  });

  it('ignores a DOCKER_HOST in process.env when given another environment', async () => {
    // dockerode reads process.env itself; connectEngine must connect where `env` says.
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = 'tcp://127.0.0.1:1';
    try {
      const engine = await connectEngine({});
      expect(engine.target).toContain('default socket');
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });
});

describe('TLS (DOCKER_TLS_VERIFY=1)', () => {
  let dir: string;
  let relay: tls.Server;
  let port: number;
  const open = new Set<net.Socket>();

  function openssl(...args: string[]): void {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  }
  /** A CA (self-signed) named `name`: name-key.pem, name.pem. */
  function ca(name: string): void {
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=airlock test ${name}`);
  }
  /** A leaf certificate `name` signed by CA `by`, with the given extensions. */
  function leaf(name: string, by: string, extensions: string): void {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(path.join(dir, `${name}.ext`), extensions);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${by}.pem`, '-CAkey', `${by}-key.pem`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  }
  /** A DOCKER_CERT_PATH directory: ca.pem (to verify the engine), cert.pem and key.pem (this client). */
  function certDir(name: string, files: { ca?: string; client?: string }): string {
    const target = path.join(dir, name);
    mkdirSync(target);
    if (files.ca) copyFileSync(path.join(dir, `${files.ca}.pem`), path.join(target, 'ca.pem'));
    if (files.client) {
      copyFileSync(path.join(dir, `${files.client}.pem`), path.join(target, 'cert.pem'));
      copyFileSync(path.join(dir, `${files.client}-key.pem`), path.join(target, 'key.pem'));
    }
    return target;
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'airlock-docker-tls-'));
    ca('trusted-ca');
    ca('other-ca');
    leaf('engine', 'trusted-ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    leaf('client', 'trusted-ca', 'extendedKeyUsage=clientAuth\n');
    leaf('stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n');
    // What dockerd --tlsverify does: only clients with a certificate from its CA get in.
    relay = tls.createServer(
      {
        key: readFileSync(path.join(dir, 'engine-key.pem')),
        cert: readFileSync(path.join(dir, 'engine.pem')),
        ca: readFileSync(path.join(dir, 'trusted-ca.pem')),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (client) => {
        const engine = net.connect(DEFAULT_SOCKET);
        open.add(client).add(engine);
        const end = (): void => {
          client.destroy();
          engine.destroy();
          open.delete(client);
          open.delete(engine);
        };
        client.on('error', end).on('close', end);
        engine.on('error', end).on('close', end);
        client.pipe(engine).pipe(client);
      },
    );
    // Handshake failures (the stranger's certificate) are expected; they must not crash the file.
    relay.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    port = (relay.address() as AddressInfo).port;
  });

  afterAll(async () => {
    for (const socket of open) socket.destroy();
    await new Promise<void>((resolve) => relay.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips to the engine with a client certificate from its CA', async () => {
    const certs = certDir('good', { ca: 'trusted-ca', client: 'client' });
    const engine = await connectEngine({ DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs });
    expect(engine.target).toBe(`tcp://127.0.0.1:${port} with TLS (DOCKER_HOST, certs from DOCKER_CERT_PATH=${certs})`);
    expect(engine.apiVersion).toMatch(/^1\.\d+$/);
    // Through the same TLS client, the real engine: it knows the test image.
    expect((await engine.docker.getImage(TEST_IMAGE).inspect()).RepoTags).toContain(TEST_IMAGE);
  });

  it('fails with a TLS error when the engine rejects a client certificate from another CA', async () => {
    const certs = certDir('stranger', { ca: 'trusted-ca', client: 'stranger' });
    const err = await failure({ DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs });
    expect(isAirlockError(err) && err.code).toBe('unavailable');
    expect(err.message).toContain(`cannot reach the Docker Engine at tcp://127.0.0.1:${port} with TLS`);
    // With TLS 1.3 the engine checks the client certificate after the client considers the
    // handshake done, so Node sees the connection close ("socket hang up"), not the alert.
    expect(err.message).toMatch(/(refused|rejected) this client's certificate/);
    expect(err.message).toContain(`cert.pem and key.pem in ${certs} must be signed by a CA the engine trusts`);
    // Never the key itself, however deeply the error is inspected.
    const key = readFileSync(path.join(certs, 'key.pem'), 'utf8');
    const keyBody = key.split('\n')[1]!;
    const everything = inspect(err, { depth: 10, showHidden: true });
    expect(everything).not.toContain('PRIVATE KEY');
    expect(everything).not.toContain(keyBody);
  });

  it('fails when ca.pem is not the CA that signed the engine', async () => {
    const certs = certDir('wrong-ca', { ca: 'other-ca', client: 'client' });
    const err = await failure({ DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs });
    // OpenSSL reports SELF_SIGNED_CERT_IN_CHAIN here (the engine's CA is self-signed and unknown).
    expect(err.message).toMatch(/the engine's certificate could not be verified \([A-Z_]+: /);
    expect(err.message).toContain(`${path.join(certs, 'ca.pem')} must be the CA that signed the engine's certificate`);
  });

  it('names the missing files and the variable when DOCKER_CERT_PATH lacks them', async () => {
    const certs = certDir('only-ca', { ca: 'trusted-ca' });
    const err = await failure({ DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs });
    expect(isAirlockError(err) && err.code).toBe('validation');
    expect(err.message).toContain(`DOCKER_TLS_VERIFY=1 needs ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH=${certs}`);
    expect(err.message).toContain(`${path.join(certs, 'cert.pem')} does not exist, ${path.join(certs, 'key.pem')} does not exist`);
    expect(err.message).not.toContain(`${path.join(certs, 'ca.pem')} does not exist`);
  });
});

describe('the test image', () => {
  it('exists and runs git', async () => {
    const { docker } = await requireTestEngine();
    const image = await docker.getImage(TEST_IMAGE).inspect();
    expect(image.Config.Cmd).toEqual(['bash']);
    expect(image.Config.Labels?.['dev.airlock.test-image.recipe']).toMatch(/^[0-9a-f]{16}$/);

    const run = `docker-engine-${process.pid}-${Date.now()}`;
    // Tty: the log is then the plain output, not Docker's multiplexed stdout/stderr frames.
    const container = await docker.createContainer({ Image: TEST_IMAGE, Cmd: ['git', '--version'], Tty: true, Labels: { [TEST_CONTAINER_LABEL]: run } });
    try {
      await container.start();
      const exit = (await container.wait()) as { StatusCode: number };
      const output = (await container.logs({ stdout: true, stderr: true })).toString('utf8');
      expect(exit.StatusCode, output).toBe(0);
      expect(output).toMatch(/^git version 2\.\d+/);
    } finally {
      await container.remove({ force: true });
    }
    const leftovers = await docker.listContainers({ all: true, filters: { label: [`${TEST_CONTAINER_LABEL}=${run}`] } });
    expect(leftovers).toEqual([]);
  });
});
