/**
 * Flag parsers shared by `airlock env` and `airlock task create`: the recipe flags (`--image`,
 * `--repo URL[#REF]`, `--setup`, `--secret`, `--env`, `--cpus`, `--memory`…) checked with the
 * protocol's own schemas, so an error names the flag before any request is sent (the server
 * checks everything again).
 */
import { InvalidArgumentError } from 'commander';
import type { z } from 'zod';
import { Cpus, GitRef, MAX_SETUP_TIMEOUT_SECONDS, MemorySize, RepositoryUrl, VariableName, type Repository } from '../protocol/environment.js';

/** Parse `value` with `schema`, or fail naming the flag, the problem and an example. */
export function check<T>(schema: z.ZodType<T>, flag: string, value: unknown, example: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new InvalidArgumentError(`${flag} ${result.error.issues[0]?.message ?? 'is not valid'} (e.g. ${example}).`);
  return result.data;
}

/** `URL#REF`: the ref after the last '#' (URLs we accept never contain one otherwise). Repeatable. */
export function parseRepo(value: string, previous: Repository[] = []): Repository[] {
  const hash = value.lastIndexOf('#');
  const url = hash === -1 ? value : value.slice(0, hash);
  const ref = hash === -1 ? undefined : value.slice(hash + 1);
  const repo: Repository = { url: check(RepositoryUrl, '--repo', url, 'https://github.com/org/repo.git#main') };
  if (ref !== undefined) repo.ref = check(GitRef, '--repo ref', ref, 'main');
  return [...previous, repo];
}

/** A repeatable flag: every value, in order. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** A repeatable variable-NAME flag (`--secret`, `--env`). */
export function variableName(flag: string) {
  return (value: string, previous: string[] = []): string[] => [...previous, check(VariableName, flag, value, 'GITHUB_TOKEN')];
}

export function parseImage(value: string): string {
  if (value.length === 0 || value.length > 255) throw new InvalidArgumentError('--image must be an OCI image reference of 1–255 characters (e.g. ghcr.io/org/image:tag).');
  return value;
}

export function parseSetupTimeout(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_SETUP_TIMEOUT_SECONDS) throw new InvalidArgumentError(`--setup-timeout must be whole seconds from 1 to ${MAX_SETUP_TIMEOUT_SECONDS}.`);
  return n;
}

/** Plain decimal notation only: `Number()` would also take "0x10", "1e3", "" and " 2 ". */
const DECIMAL = /^(\d+(\.\d*)?|\.\d+)$/;

/** `--cpus N`: CPUs, fractions allowed, by the API's own rule (resources.cpus). */
export function parseCpus(value: string): number {
  if (!DECIMAL.test(value)) throw new InvalidArgumentError(`--cpus must be a number of CPUs such as 2 or 0.5, got ${JSON.stringify(value.slice(0, 40))}.`);
  return check(Cpus, '--cpus', Number(value), '2 or 0.5');
}

/** `--memory SIZE`: `512m`, `2g`, `1.5g` or bytes, by the API's own rule (resources.memory); sent as written. */
export function parseMemory(value: string): string {
  return check(MemorySize, '--memory', value, '512m, 2g or 1.5g') as string;
}

/** The `resources` field the size flags describe, or undefined when neither was given. */
export function resourcesFromFlags(options: { cpus?: number; memory?: string }): { cpus?: number; memory?: string } | undefined {
  if (options.cpus === undefined && options.memory === undefined) return undefined;
  return { ...(options.cpus !== undefined ? { cpus: options.cpus } : {}), ...(options.memory !== undefined ? { memory: options.memory } : {}) };
}
