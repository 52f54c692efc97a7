/** Which of the worker's task variables an execution receives (src/worker/task-env.ts). */
import { describe, expect, it } from 'vitest';
import { selectTaskEnv } from '../../src/worker/task-env.js';

const pool = { GREETING: 'hello', DEPLOY_TOKEN: 'deploy-secret', NPM_TOKEN: 'npm-secret' };

describe('selectTaskEnv', () => {
  it('gives the whole pool to a task whose recipe names no variables', () => {
    expect(selectTaskEnv(pool, {})).toEqual({ ok: true, env: pool });
    expect(selectTaskEnv(pool, { secret_names: [], env_names: [] })).toEqual({ ok: true, env: pool });
  });

  it('gives exactly the named ones, secrets and plain variables alike', () => {
    expect(selectTaskEnv(pool, { secret_names: ['DEPLOY_TOKEN'], env_names: ['GREETING'] })).toEqual({ ok: true, env: { DEPLOY_TOKEN: 'deploy-secret', GREETING: 'hello' } });
  });

  it('refuses names the pool lacks, listing each with the flag that would add it', () => {
    const result = selectTaskEnv(pool, { secret_names: ['AWS_SECRET_ACCESS_KEY'], env_names: ['GREETING', 'PATH'] });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.message).toMatch(/no task variables AWS_SECRET_ACCESS_KEY, PATH, .* give the worker -e AWS_SECRET_ACCESS_KEY -e PATH/);
  });

  it('never reaches past the pool into inherited object properties', () => {
    expect(selectTaskEnv(pool, { env_names: ['constructor'] }).ok).toBe(false);
    expect(selectTaskEnv(pool, { env_names: ['__proto__'] }).ok).toBe(false);
  });
});
