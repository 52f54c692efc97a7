// The gateway's configuration at the edges (server config file, worker `models:`) and the
// task-scoped LLM token as a function: signatures, expiry, renewal, hostile tokens.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { loadServerConfigFile, resolveLlmGatewayConfig } from '../../src/server/llm/config.js';
import { LlmTokenAuthority } from '../../src/server/llm/tokens.js';
import { resolveWorkerConfig } from '../../src/worker/config.js';

const dirs: string[] = [];
function file(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'al-gwc-'));
  dirs.push(dir);
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const MODELS = 'models:\n  default: p\n  providers:\n    p:\n      type: openai-compatible\n      base_url: http://127.0.0.1:9/v1\n';

describe('server config file', () => {
  it('reads models, per-team overrides and the token lifetime', () => {
    const config = resolveLlmGatewayConfig(
      loadServerConfigFile(file('s.yaml', `${MODELS}llm_token_ttl: 30m\nteams:\n  research:\n    retain_bodies: false\n    models:\n      default: q\n      providers:\n        q: { type: anthropic, api_key_env: K }\n`)),
    );
    expect(config.tokenTtlMs).toBe(30 * 60_000);
    expect(config.models?.default).toBe('p');
    expect(config.teams.research?.models?.default).toBe('q');
    expect(resolveLlmGatewayConfig().tokenTtlMs).toBe(15 * 60_000);
  });

  it.each([
    ['modles: {}\n', /unknown field "modles"/],
    ['llm_token_ttl: 5s\n', /llm_token_ttl: "5s" must be a duration from 1m to 24h/],
    ['teams:\n  a:\n    retain_bodies: true\n', /teams\.a\.retain_bodies: storing prompt and response bodies is not supported yet/],
    ['teams:\n  a:\n    modles: {}\n', /teams\.a.*unknown field "modles"/],
    [`${MODELS.replace('openai-compatible', 'openia')}`, /models\.providers\.p/],
    ['models: [\n', /not valid YAML/],
  ])('refuses %j naming the field', (text, message) => {
    expect(() => loadServerConfigFile(file('s.yaml', text))).toThrow(message);
  });

  it('names a missing file', () => {
    expect(() => loadServerConfigFile('/nonexistent/airlock.yaml')).toThrow(/cannot read the server config file \/nonexistent\/airlock.yaml/);
  });
});

describe('worker models:', () => {
  const base = { server: 'http://127.0.0.1:1', apiKey: 'k', workerId: 'w', stateDir: '/tmp/x' };
  it('is read from the worker file; absent means the control plane', () => {
    expect(resolveWorkerConfig({ ...base, config: file('w.yaml', MODELS) }, {}).models?.providers.p?.type).toBe('openai-compatible');
    expect(resolveWorkerConfig({ ...base, config: file('w.yaml', 'concurrency: 2\n') }, {}).models).toBeNull();
  });
  it('refuses unknown keys inside it, naming them', () => {
    expect(() => resolveWorkerConfig({ ...base, config: file('w.yaml', `${MODELS}  extra: 1\n`) }, {})).toThrow(/models.*unknown field "extra"/);
  });
});

describe('LLM tokens', () => {
  const secret = Buffer.alloc(32, 1);
  const exe = 'exe_abcdefghijklmnopqrst';

  it('verify what they issue until expiry, and nothing after', () => {
    const authority = new LlmTokenAuthority(secret, 60_000);
    const token = authority.issue(exe, 1_000);
    expect(authority.verify(token.token, 1_000)).toEqual({ ok: true, executionId: exe, expiresAtMs: 61_000 });
    expect(authority.verify(token.token, 61_000)).toMatchObject({ ok: false, reason: 'expired' });
    expect(new LlmTokenAuthority(Buffer.alloc(32, 2), 60_000).verify(token.token, 1_000)).toMatchObject({ ok: false, reason: 'signature' });
  });

  it('remember a verified token until it expires, and never let that vouch for a mutated copy', () => {
    const authority = new LlmTokenAuthority(secret, 60_000);
    const { token } = authority.issue(exe, 0);
    expect(authority.verify(token, 10)).toMatchObject({ ok: true, executionId: exe });
    expect(authority.verify(token, 20)).toMatchObject({ ok: true, executionId: exe }); // from the cache
    const mutated = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
    expect(authority.verify(mutated, 30)).toMatchObject({ ok: false, reason: 'signature' });
    expect(authority.verify(token, 60_000)).toMatchObject({ ok: false, reason: 'expired' });
  });

  it('renew only past half their life, and forget ended executions', () => {
    const authority = new LlmTokenAuthority(secret, 60_000);
    authority.issue(exe, 0);
    expect(authority.renewals([exe], 29_000)).toEqual([]);
    expect(authority.renewals([exe], 31_000)).toEqual([expect.objectContaining({ execution_id: exe, expires_at_ms: 91_000 })]);
    expect(authority.renewals(['exe_bbbbbbbbbbbbbbbbbbbb'], 0)).toHaveLength(1); // unknown here: issue one
    authority.rememberActive({ executionId: exe, taskId: 't', teamId: 'x' }, 0);
    expect(authority.recentlyActive(exe, 500)).toBeDefined();
    authority.forget(exe);
    expect(authority.recentlyActive(exe, 500)).toBeUndefined();
  });

  it('never accept a mutated or arbitrary token (property)', () => {
    const authority = new LlmTokenAuthority(secret, 60_000);
    const valid = authority.issue(exe, 0).token;
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => !authority.verify(s, 0).ok),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.nat({ max: valid.length - 1 }), fc.string({ minLength: 1, maxLength: 1 }), (at, c) => {
        const mutated = valid.slice(0, at) + c + valid.slice(at + 1);
        return mutated === valid || !authority.verify(mutated, 0).ok;
      }),
      { numRuns: 500 },
    );
  });
});
