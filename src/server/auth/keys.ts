/**
 * Team-scoped API keys and the authenticator the ServerContext uses (the auth module's public
 * surface: the server assembly and the admin CLI import from here). Format: `alk_<id>_<secret>`,
 * where `<id>` is 20 lowercase base32 characters (the record id is `key_<id>`) and `<secret>` is
 * 32 base62 characters from a CSPRNG (~190 bits).
 *
 * Invariants:
 * - The key itself is never stored, logged or returned after minting: the store keeps only
 *   HMAC-SHA256(server secret, whole key), hex. A stolen database alone authenticates nothing.
 * - Verification looks the record up by its public id and compares hashes in constant time; a
 *   token that does not have the key's exact shape is refused before any store lookup.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { randomBase32 } from '../../lib/ids.js';
import type { Principal } from '../context.js';
import type { ApiKeyRecord, Role, Store } from '../store/store.js';

export { loadOrCreateServerSecret, SERVER_SECRET_BYTES, SERVER_SECRET_FILE } from './secret.js';

/** `alk` = AirLock Key: a fixed, greppable prefix so secret scanners can recognise leaked keys. */
export const API_KEY_PREFIX = 'alk_';
/** Same length as every other id we mint (lib/ids.ts): 100 bits, unguessable, URL-safe. */
const KEY_ID_LENGTH = 20;
/** 32 base62 characters carry ~190 bits: far beyond brute force, short enough to paste. */
const KEY_SECRET_LENGTH = 32;
const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

const KEY_PATTERN = new RegExp(`^alk_([a-z2-7]{${KEY_ID_LENGTH}})_([A-Za-z0-9]{${KEY_SECRET_LENGTH}})$`);
/** HMAC-SHA256 output: 32 bytes, 64 hex characters. */
const HASH_BYTES = 32;

export interface ParsedApiKey {
  /** The record id, `key_<20 base32 chars>`. */
  id: string;
}

/** The record id of a well-formed key, or undefined when the token does not have the key's shape. */
export function parseApiKey(token: string): ParsedApiKey | undefined {
  const match = KEY_PATTERN.exec(token);
  if (!match) return undefined;
  return { id: `key_${match[1]!}` };
}

/** Uniform base62 characters: bytes ≥ 248 are rejected so every character is equally likely. */
function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte >= 248) continue; // 248 = 4·62: the largest multiple of 62 that fits in a byte
      out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** The keyed hash stored in place of a key (hex). */
export function hashApiKey(secret: Buffer, key: string): string {
  return createHmac('sha256', secret).update(key, 'utf8').digest('hex');
}

/** Constant-time comparison of a recomputed hash with a stored one (both hex). */
export function hashesEqual(expectedHex: string, actualHex: string): boolean {
  const expected = Buffer.from(expectedHex, 'hex');
  const actual = Buffer.from(actualHex, 'hex');
  // A stored hash of the wrong length is corrupt, not a near miss: refuse without comparing.
  if (expected.length !== HASH_BYTES || actual.length !== HASH_BYTES) return false;
  return timingSafeEqual(expected, actual);
}

export interface MintApiKeyInput {
  teamId: string;
  role: Role;
  name?: string | null;
  now: number;
}

/**
 * Create a key for a team and store its hash. The returned `key` is the only copy that will ever
 * exist: show it to the operator once.
 */
export async function mintApiKey(store: Store, secret: Buffer, input: MintApiKeyInput): Promise<{ key: string; record: ApiKeyRecord }> {
  const idPart = randomBase32(KEY_ID_LENGTH);
  const key = `${API_KEY_PREFIX}${idPart}_${randomBase62(KEY_SECRET_LENGTH)}`;
  const record = await store.insertApiKey({
    id: `key_${idPart}`,
    teamId: input.teamId,
    role: input.role,
    name: input.name ?? null,
    hash: hashApiKey(secret, key),
    createdAt: input.now,
  });
  return { key, record };
}

// ── verification ──

/** Resolve a bearer token to a principal, or undefined if unknown, revoked or malformed. */
export type Authenticator = (token: string) => Promise<Principal | undefined>;

export function createAuthenticator(store: Store, secret: Buffer): Authenticator {
  return async (token) => {
    const parsed = parseApiKey(token);
    if (!parsed) return undefined; // wrong shape: no store lookup at all
    const record = await store.getApiKey(parsed.id);
    // Hash even when the record is missing, so an unknown id costs the same as a wrong secret.
    const actual = hashApiKey(secret, token);
    if (!record) return undefined;
    if (!hashesEqual(record.hash, actual)) return undefined;
    if (record.revokedAt !== null) return undefined;
    return { teamId: record.teamId, role: record.role, keyId: record.id };
  };
}
