/**
 * Flag parsers shared by `airlock env` and `airlock task create`: the recipe flags (`--image`,
 * `--repo URL[#REF]`, `--setup`, `--secret`, `--env`…) checked with the protocol's own schemas,
 * so an error names the flag before any request is sent (the server checks everything again).
 */
import { InvalidArgumentError } from 'commander';
import type { z } from 'zod';
import { GitRef, MAX_SETUP_TIMEOUT_SECONDS, RepositoryUrl, VariableName, type Repository } from '../protocol/environment.js';

/** Parse `value` with `schema`, or fail naming the flag, the problem and an example. */
export function check<T>(schema: z.ZodType<T>, flag: string, value: string, example: string): T {
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
