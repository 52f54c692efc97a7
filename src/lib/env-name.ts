/**
 * Environment variable names we pass to task processes. POSIX names (letters, digits and `_`, not
 * starting with a digit) are the only ones every shell can read back; anything else — `=`, NUL,
 * spaces — would either break `execve` or smuggle a second assignment.
 *
 * Invariant: `isValidEnvName(n)` implies `n` contains neither `=` nor `\0` and is non-empty.
 */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Far above any real name; keeps a hostile name from bloating logs and the environment block. */
const MAX_ENV_NAME_LENGTH = 256;

export function isValidEnvName(name: string): boolean {
  return name.length <= MAX_ENV_NAME_LENGTH && ENV_NAME.test(name);
}

/** Throws an error naming the variable and the rule when `name` is not a valid POSIX name. */
export function assertValidEnvName(name: string, where: string): void {
  if (!isValidEnvName(name)) {
    throw new Error(
      `${where}: ${JSON.stringify(name)} is not a valid environment variable name — use letters, digits and "_", not starting with a digit (at most ${MAX_ENV_NAME_LENGTH} characters)`,
    );
  }
}

/** Values cannot carry NUL: execve would silently truncate them. */
export function assertValidEnvValue(name: string, value: string, where: string): void {
  if (value.includes('\0')) throw new Error(`${where}: the value of ${name} contains a NUL byte, which no process environment can hold — remove it`);
}
