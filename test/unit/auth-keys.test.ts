/**
 * API keys and the server secret against a real SQLite store: the key's shape, minting and
 * verification, revocation, refusing malformed tokens without a store lookup, the secret file's
 * creation (mode 0600, shared by concurrent creators), and property tests with hostile tokens.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator, hashApiKey, loadOrCreateServerSecret, mintApiKey, parseApiKey } from '../../src/server/auth/keys.js';
import { openSqliteStore } from '../../src/server/store/sqlite/index.js';
import type { Store } from '../../src/server/store/store.js';

const KEY_SHAPE = /^alk_([a-z2-7]{20})_([A-Za-z0-9]{32})$/;

let dir: string;
let store: Store;
let secret: Buffer;
let teamId: string;

/** The real store, with its key lookups counted. */
function countingStore(inner: Store): { store: Store; lookups: () => number } {
  let lookups = 0;
  const store = new Proxy(inner, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (prop === 'getApiKey') {
        return (id: string) => {
          lookups++;
          return target.getApiKey(id);
        };
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store, lookups: () => lookups };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-auth-'));
  store = await openSqliteStore({ path: join(dir, 'airlock.db') });
  await store.migrate();
  secret = loadOrCreateServerSecret(dir);
  teamId = (await store.createTeam({ id: 'team_aaaaaaaaaaaaaaaaaaaa', name: 'auth', now: 1 })).id;
});

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('minting and verifying', () => {
  it('mints alk_<20 base32>_<32 base62> with record id key_<same 20> and stores only the HMAC', async () => {
    const { key, record } = await mintApiKey(store, secret, { teamId, role: 'member', name: 'ci', now: 1000 });
    const match = KEY_SHAPE.exec(key);
    expect(match).not.toBeNull();
    expect(record).toMatchObject({ id: `key_${match![1]}`, teamId, role: 'member', name: 'ci', createdAt: 1000, revokedAt: null });
    expect(record.hash).toBe(hashApiKey(secret, key));
    expect(record.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await store.getApiKey(record.id)).toEqual(record);
    expect(parseApiKey(key)).toEqual({ id: record.id });
  });

  it('authenticates a key as its team and role, and stops after revocation', async () => {
    const authenticate = createAuthenticator(store, secret);
    const { key, record } = await mintApiKey(store, secret, { teamId, role: 'admin', now: 1 });
    expect(await authenticate(key)).toEqual({ teamId, role: 'admin', keyId: record.id });
    expect(await store.revokeApiKey(teamId, record.id, 2)).toBe(true);
    expect(await authenticate(key)).toBeUndefined();
  });

  it('refuses a key verified with another server secret', async () => {
    const { key } = await mintApiKey(store, secret, { teamId, role: 'member', now: 1 });
    const other = createAuthenticator(store, Buffer.alloc(32, 7));
    expect(await other(key)).toBeUndefined();
  });

  it('never looks up malformed tokens in the store', async () => {
    const counted = countingStore(store);
    const authenticate = createAuthenticator(counted.store, secret);
    const { key } = await mintApiKey(store, secret, { teamId, role: 'member', now: 1 });
    for (const token of ['', 'alk_', key + 'x', key.slice(1), ` ${key}`, key.toUpperCase(), key.replace('alk_', 'alx_'), key.replace(/_([^_]+)$/, '-$1')]) {
      expect(await authenticate(token)).toBeUndefined();
    }
    expect(counted.lookups()).toBe(0);
    expect(await authenticate(key)).toBeDefined();
    expect(counted.lookups()).toBe(1);
  });
});

describe('property: hostile tokens', () => {
  it('random strings never authenticate', async () => {
    const authenticate = createAuthenticator(store, secret);
    await mintApiKey(store, secret, { teamId, role: 'member', now: 1 });
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.stringMatching(KEY_SHAPE)), async (token) => {
        expect(await authenticate(token)).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('every single-character mutation of a real key fails (a known id with a wrong secret included)', async () => {
    const authenticate = createAuthenticator(store, secret);
    const { key } = await mintApiKey(store, secret, { teamId, role: 'member', now: 1 });
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-';
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: key.length - 1 }), fc.constantFrom(...alphabet), fc.constantFrom('replace', 'insert', 'delete'), async (at, ch, op) => {
        const mutated =
          op === 'replace' ? key.slice(0, at) + ch + key.slice(at + 1) : op === 'insert' ? key.slice(0, at) + ch + key.slice(at) : key.slice(0, at) + key.slice(at + 1);
        fc.pre(mutated !== key);
        expect(await authenticate(mutated)).toBeUndefined();
      }),
      { numRuns: 400 },
    );
    expect(await authenticate(key)).toBeDefined();
  });

  it('the key never appears in the store: not in records, not in the database files', async () => {
    const keys: string[] = [];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('admin', 'member', 'worker' as const), fc.option(fc.string({ maxLength: 20 }), { nil: null }), async (role, name) => {
        const minted = await mintApiKey(store, secret, { teamId, role, name, now: 5 });
        keys.push(minted.key);
        expect(JSON.stringify(minted.record)).not.toContain(minted.key.split('_')[2]);
      }),
      { numRuns: 25 },
    );
    const records = JSON.stringify(await store.listApiKeys(teamId));
    const files = readdirSync(dir)
      .filter((f) => f.startsWith('airlock.db'))
      .map((f) => readFileSync(join(dir, f)).toString('latin1'))
      .join('');
    for (const key of keys) {
      const secretPart = key.split('_')[2]!;
      expect(records).not.toContain(secretPart);
      expect(files).not.toContain(secretPart);
      expect(files).not.toContain(key);
    }
    // The hashes are there (proof the files were actually read).
    expect(files).toContain((await store.listApiKeys(teamId))[0]!.hash);
  });
});

describe('server secret', () => {
  it('is created once with mode 0600 and loaded afterwards', () => {
    const fresh = mkdtempSync(join(tmpdir(), 'airlock-secret-'));
    try {
      const dataDir = join(fresh, 'nested', 'data');
      const first = loadOrCreateServerSecret(dataDir);
      expect(first).toHaveLength(32);
      const path = join(dataDir, 'secret.key');
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(dataDir).mode & 0o077).toBe(0);
      expect(loadOrCreateServerSecret(dataDir).equals(first)).toBe(true);
      expect(readdirSync(dataDir)).toEqual(['secret.key']); // no temporary files left
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  it('refuses a damaged secret file with words that say what to do', () => {
    const fresh = mkdtempSync(join(tmpdir(), 'airlock-secret-'));
    try {
      writeFileSync(join(fresh, 'secret.key'), 'short');
      expect(() => loadOrCreateServerSecret(fresh)).toThrow(/holds 5 bytes instead of 32 — restore it from a backup/);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  it('gives every concurrent creator the same secret', async () => {
    const fresh = mkdtempSync(join(tmpdir(), 'airlock-secret-'));
    try {
      const { spawn } = await import('node:child_process');
      const { build } = await import('esbuild');
      // Bundle the real module once, then let several processes race to create the file.
      const bundle = join(fresh, 'secret.mjs');
      await build({ entryPoints: [new URL('../../src/server/auth/secret.ts', import.meta.url).pathname], bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'silent' });
      const dataDir = join(fresh, 'data');
      const script = `import(${JSON.stringify(bundle)}).then((m) => process.stdout.write(m.loadOrCreateServerSecret(process.argv[1]).toString('hex')))`;
      const runs = Array.from({ length: 6 }, () =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(process.execPath, ['-e', script, dataDir]);
          let out = '';
          let err = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.stderr.on('data', (d: Buffer) => (err += d.toString()));
          child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
        }),
      );
      const secrets = await Promise.all(runs);
      expect(new Set(secrets).size).toBe(1);
      expect(secrets[0]).toBe(loadOrCreateServerSecret(dataDir).toString('hex'));
      expect(readdirSync(dataDir)).toEqual(['secret.key']);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });
});
