/**
 * Registry credentials for pulls, read from the worker's Docker client config as the Docker CLI
 * reads them: `auths` entries (auth, username/password, identity token) and credential helpers.
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { registryAuth, registryOf } from '../../src/worker/backends/docker/images.js';

function config(content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'al-dcfg-'));
  writeFileSync(join(dir, 'config.json'), typeof content === 'string' ? content : JSON.stringify(content));
  return dir;
}

describe('registry credentials from the worker\'s Docker config', () => {
  it.each([
    ['debian:bookworm', 'docker.io'],
    ['library/debian', 'docker.io'],
    ['ghcr.io/acme/tool:1', 'ghcr.io'],
    ['registry.local:5000/team/img', 'registry.local:5000'],
    ['localhost/img', 'localhost'],
  ])('%s is pulled from %s', (image, registry) => {
    expect(registryOf(image)).toBe(registry);
  });

  it('reads auths entries: base64 auth, username/password, identity token; Docker Hub under its legacy key', async () => {
    const dir = config({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hubpass').toString('base64') },
        'ghcr.io': { username: 'gh', password: 'ghp_x' },
        'registry.local:5000': { identitytoken: 'tok' },
      },
    });
    expect(await registryAuth('docker.io', { DOCKER_CONFIG: dir })).toEqual({ username: 'hubuser', password: 'hubpass', serveraddress: 'https://index.docker.io/v1/' });
    expect(await registryAuth('ghcr.io', { DOCKER_CONFIG: dir })).toEqual({ username: 'gh', password: 'ghp_x', serveraddress: 'ghcr.io' });
    expect(await registryAuth('registry.local:5000', { DOCKER_CONFIG: dir })).toEqual({ identitytoken: 'tok', serveraddress: 'registry.local:5000' });
    expect(await registryAuth('quay.io', { DOCKER_CONFIG: dir })).toBeUndefined();
  });

  it('asks a credential helper (docker-credential-<name> get), and treats "not found" as anonymous', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'al-dhelper-'));
    const helper = join(bin, 'docker-credential-fake');
    writeFileSync(helper, '#!/bin/sh\nread server\nif [ "$server" = "ghcr.io" ]; then echo "{\\"Username\\":\\"u\\",\\"Secret\\":\\"s3cret\\"}"; else echo "credentials not found in native keychain"; exit 1; fi\n');
    chmodSync(helper, 0o755);
    const dir = config({ credHelpers: { 'ghcr.io': 'fake', 'quay.io': 'fake' } });
    const env = { DOCKER_CONFIG: dir, PATH: `${bin}:${process.env.PATH}` };
    const previous = process.env.PATH;
    process.env.PATH = env.PATH; // spawn resolves the helper on the worker's PATH
    try {
      expect(await registryAuth('ghcr.io', env)).toEqual({ username: 'u', password: 's3cret', serveraddress: 'ghcr.io' });
      expect(await registryAuth('quay.io', env)).toBeUndefined();
    } finally {
      process.env.PATH = previous;
    }
  });

  it('no config file means anonymous pulls; a broken one is an error naming the file and the fix', async () => {
    expect(await registryAuth('docker.io', { DOCKER_CONFIG: mkdtempSync(join(tmpdir(), 'al-empty-')) })).toBeUndefined();
    const dir = config('{ not json');
    await expect(registryAuth('docker.io', { DOCKER_CONFIG: dir })).rejects.toThrow(new RegExp(`${dir}/config.json cannot be read: .* — fix or remove it`));
  });
});
