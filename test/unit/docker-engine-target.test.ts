// resolveEngineTarget as a pure function: every accepted DOCKER_HOST form, what TLS adds, and
// the configurations it refuses (each error naming the variable and the fix). Connecting for
// real is test/integration/docker-engine.test.ts.
import { describe, expect, it } from 'vitest';
import { isAirlockError } from '../../src/protocol/errors.js';
import { resolveEngineTarget, type EngineEnv } from '../../src/worker/backends/docker/engine.js';

function refusal(env: EngineEnv): { message: string; field: unknown } {
  try {
    resolveEngineTarget(env);
  } catch (err) {
    if (!isAirlockError(err) || err.code !== 'validation') throw err;
    return { message: err.message, field: err.details?.field };
  }
  throw new Error(`resolveEngineTarget(${JSON.stringify(env)}) accepted it`);
}

describe('resolveEngineTarget', () => {
  it('uses the default socket when DOCKER_HOST is unset or empty', () => {
    for (const env of [{}, { DOCKER_HOST: '' }]) {
      expect(resolveEngineTarget(env)).toEqual({
        kind: 'unix',
        socketPath: '/var/run/docker.sock',
        options: { socketPath: '/var/run/docker.sock' },
        description: 'unix:///var/run/docker.sock (default socket)',
      });
    }
  });

  it('takes a unix socket from DOCKER_HOST, ignoring the TLS variables', () => {
    const target = resolveEngineTarget({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock', DOCKER_TLS_VERIFY: '1' });
    expect(target).toEqual({
      kind: 'unix',
      socketPath: '/run/user/1000/docker.sock',
      options: { socketPath: '/run/user/1000/docker.sock' },
      description: 'unix:///run/user/1000/docker.sock (DOCKER_HOST)',
    });
  });

  it('speaks plain HTTP to tcp:// without DOCKER_TLS_VERIFY', () => {
    for (const off of [undefined, '', '0', 'false']) {
      const target = resolveEngineTarget({ DOCKER_HOST: 'tcp://10.0.0.5:2375', DOCKER_TLS_VERIFY: off });
      expect(target).toMatchObject({ kind: 'tcp', host: '10.0.0.5', port: 2375, tls: null, options: { host: '10.0.0.5', port: 2375, protocol: 'http' } });
      expect(target.description).toBe('tcp://10.0.0.5:2375 without TLS (DOCKER_HOST)');
    }
  });

  it('uses TLS with the certificates of DOCKER_CERT_PATH when DOCKER_TLS_VERIFY=1', () => {
    const target = resolveEngineTarget({ DOCKER_HOST: 'tcp://docker.internal:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/etc/airlock/docker' });
    expect(target).toEqual({
      kind: 'tcp',
      host: 'docker.internal',
      port: 2376,
      tls: {
        certDir: '/etc/airlock/docker',
        certDirSource: 'DOCKER_CERT_PATH',
        caPath: '/etc/airlock/docker/ca.pem',
        certPath: '/etc/airlock/docker/cert.pem',
        keyPath: '/etc/airlock/docker/key.pem',
      },
      options: { host: 'docker.internal', port: 2376, protocol: 'https' },
      description: 'tcp://docker.internal:2376 with TLS (DOCKER_HOST, certs from DOCKER_CERT_PATH=/etc/airlock/docker)',
    });
  });

  it('looks for certificates in ~/.docker when DOCKER_CERT_PATH is unset', () => {
    const target = resolveEngineTarget({ DOCKER_HOST: 'tcp://10.0.0.5:2376', DOCKER_TLS_VERIFY: 'true', HOME: '/home/ops' });
    expect(target.kind === 'tcp' && target.tls).toMatchObject({ certDir: '/home/ops/.docker', certDirSource: 'default', keyPath: '/home/ops/.docker/key.pem' });
    expect(target.description).toBe('tcp://10.0.0.5:2376 with TLS (DOCKER_HOST, certs from /home/ops/.docker)');
  });

  it("defaults the port the way the Docker CLI does (2376 with TLS, 2375 without)", () => {
    expect(resolveEngineTarget({ DOCKER_HOST: 'tcp://10.0.0.5' })).toMatchObject({ port: 2375, description: 'tcp://10.0.0.5:2375 (default port) without TLS (DOCKER_HOST)' });
    expect(resolveEngineTarget({ DOCKER_HOST: 'tcp://10.0.0.5/', DOCKER_TLS_VERIFY: '1', HOME: '/h' })).toMatchObject({ port: 2376 });
  });

  it('accepts an IPv6 address, handing dockerode the bare address', () => {
    const target = resolveEngineTarget({ DOCKER_HOST: 'tcp://[::1]:2375' });
    expect(target).toMatchObject({ host: '::1', port: 2375, description: 'tcp://[::1]:2375 without TLS (DOCKER_HOST)' });
  });

  it.each([
    ['ssh://me@build-host', 'uses the unsupported scheme ssh://'],
    ['http://10.0.0.5:2375', 'uses the unsupported scheme http://'],
    ['fd://', 'uses the unsupported scheme fd://'],
    ['npipe:////./pipe/docker_engine', 'a Windows named pipe'],
    ['10.0.0.5:2375', 'is not a URL with a scheme'],
    ['/var/run/docker.sock', 'is not a URL with a scheme'],
    ['unix://', 'must name an absolute socket path'],
    ['unix://docker.sock', 'must name an absolute socket path'],
    ['tcp://', 'names no host'],
    ['tcp://10.0.0.5:99999', 'is not a valid tcp:// address'],
    ['tcp://10.0.0.5:port', 'is not a valid tcp:// address'],
    ['tcp://admin:hunter2@10.0.0.5:2375', 'must not carry credentials'],
    ['tcp://10.0.0.5:2375/v1.41', 'without a path, query or fragment'],
    ['tcp://10.0.0.5:2375?x=1', 'without a path, query or fragment'],
  ])('refuses DOCKER_HOST=%s', (value, problem) => {
    const { message, field } = refusal({ DOCKER_HOST: value });
    expect(field).toBe('DOCKER_HOST');
    expect(message).toContain(problem);
    expect(message).toContain('— use unix:///path/to/docker.sock, or tcp://host:port (with DOCKER_TLS_VERIFY=1 for TLS)');
  });

  it('shows the refused value with its password masked, and cut short', () => {
    const withPassword = refusal({ DOCKER_HOST: 'tcp://admin:hunter2@10.0.0.5:2375' }).message;
    expect(withPassword).toContain('DOCKER_HOST="tcp://admin:***@10.0.0.5:2375"');
    expect(withPassword).not.toContain('hunter2');
    const { message } = refusal({ DOCKER_HOST: `bogus://${'x'.repeat(500)}` });
    expect(message.length).toBeLessThan(300);
    expect(message).toContain('…');
  });

  it('refuses a DOCKER_TLS_VERIFY that is neither on nor off', () => {
    const { message, field } = refusal({ DOCKER_HOST: 'tcp://10.0.0.5:2376', DOCKER_TLS_VERIFY: 'yes' });
    expect(field).toBe('DOCKER_TLS_VERIFY');
    expect(message).toContain('DOCKER_TLS_VERIFY must be 1');
  });

  it('refuses DOCKER_TLS without verification rather than silently speaking plain HTTP', () => {
    const { message, field } = refusal({ DOCKER_HOST: 'tcp://10.0.0.5:2376', DOCKER_TLS: '1' });
    expect(field).toBe('DOCKER_TLS');
    expect(message).toContain('set DOCKER_TLS_VERIFY=1');
  });
});
