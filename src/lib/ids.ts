/**
 * Ids we mint: `<prefix>_` + 20 lowercase base32 characters from a CSPRNG (100 bits), so ids are
 * unguessable (a task id is not a capability, but guessing one should not even find a 404 fast)
 * and safe in file names, labels and URLs.
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

export function randomBase32(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! & 31];
  return out;
}

export type IdPrefix = 'tsk' | 'exe' | 'team' | 'key' | 'off' | 'msg' | 'evt' | 'wsn';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBase32(20)}`;
}
