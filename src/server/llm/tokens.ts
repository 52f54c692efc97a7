/**
 * Task-scoped LLM tokens: what a worker presents to the control plane's LLM gateway for one
 * execution. Format: `allt.<execution id>.<expires at, ms>.<signature>`, the signature being
 * HMAC-SHA256 over `<execution id>.<expires at>` with a key derived from the server secret
 * (`<data-dir>/secret.key`), base64url.
 *
 * Why signed, not a hashed row: a token is checked on every model request (the hot path of the
 * gateway), minted on every claim and renewed on heartbeats. A signature is verified without a
 * write and without a lookup of its own; the one lookup left — is the execution still running? —
 * is what revokes it, so an execution that ended (succeeded, failed, cancelled, expired, lost)
 * takes all its tokens with it at once, and nothing has to be deleted. Several replicas sharing
 * the data-dir secret verify each other's tokens.
 *
 * Invariants:
 * - The signing key is HMAC(server secret, a fixed label): never the API-key hashing key itself,
 *   so a token signature can never be replayed as an API-key hash or the other way round.
 * - Signatures are compared in constant time; a token of the wrong shape is refused before any
 *   cryptography or store access.
 * - A token is valid only until `expires_at_ms` and only while its execution is not terminal
 *   (checked by the gateway against the store).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { LlmToken } from '../../protocol/worker-messages.js';

export const LLM_TOKEN_PREFIX = 'allt';
/** Domain separation: the label the signing key is derived with. Changing it invalidates every token. */
const KEY_LABEL = 'airlock llm gateway token v1';
/** HMAC-SHA256 in base64url, no padding. */
const SIGNATURE_LENGTH = 43;
/** `allt.exe_<id>.<ms>.<sig>`: ids are our own (`exe_` + base32), times whole milliseconds. */
const TOKEN_PATTERN = /^allt\.(exe_[a-z0-9]{1,64})\.(\d{1,16})\.([A-Za-z0-9_-]{43})$/;

/** Short enough that a leaked token is soon useless, long enough to outlive a few missed heartbeats. */
export const DEFAULT_LLM_TOKEN_TTL_MS = 15 * 60_000;
/** A token is renewed once less than this fraction of its life remains. */
const RENEW_AT_FRACTION = 0.5;
/** How often the record of issued tokens is pruned of expired entries (every N issues). */
const PRUNE_EVERY = 256;
/**
 * How long "this execution is running" is believed without asking the store again. An execution
 * that ends through its worker's `finished` is forgotten at once; one that ends otherwise (lease
 * expiry, a worker that vanished) stops being accepted within this time.
 */
export const ACTIVE_CACHE_MS = 1_000;
/** Tokens whose signature checked out, kept until they expire (bounded: cleared when full). */
const VERIFIED_CACHE_LIMIT = 10_000;

export interface ActiveExecution {
  executionId: string;
  taskId: string;
  teamId: string;
}

export type TokenCheck = { ok: true; executionId: string; expiresAtMs: number } | { ok: false; reason: 'malformed' | 'signature' | 'expired'; executionId?: string };

export class LlmTokenAuthority {
  private readonly key: Buffer;
  /** Execution id → expiry of the newest token issued for it by this process (renewal bookkeeping). */
  private readonly issued = new Map<string, number>();
  private issuesSincePrune = 0;
  private readonly active = new Map<string, { execution: ActiveExecution; until: number }>();
  private readonly verified = new Map<string, { executionId: string; expiresAtMs: number }>();

  constructor(
    serverSecret: Buffer,
    readonly ttlMs: number = DEFAULT_LLM_TOKEN_TTL_MS,
  ) {
    this.key = createHmac('sha256', serverSecret).update(KEY_LABEL, 'utf8').digest();
  }

  private sign(executionId: string, expiresAtMs: number): string {
    return createHmac('sha256', this.key).update(`${executionId}.${expiresAtMs}`, 'utf8').digest('base64url');
  }

  /** A fresh token for an execution, valid for `ttlMs` from `now`. */
  issue(executionId: string, now: number): LlmToken {
    const expiresAtMs = now + this.ttlMs;
    this.issued.set(executionId, expiresAtMs);
    if (++this.issuesSincePrune >= PRUNE_EVERY) this.prune(now);
    return { execution_id: executionId, token: `${LLM_TOKEN_PREFIX}.${executionId}.${expiresAtMs}.${this.sign(executionId, expiresAtMs)}`, expires_at_ms: expiresAtMs };
  }

  /**
   * Fresh tokens for those of `executionIds` whose newest token has less than half its life
   * left, or none known to this process (a worker that reconnected to it, a restarted server).
   */
  renewals(executionIds: readonly string[], now: number): LlmToken[] {
    const threshold = now + this.ttlMs * RENEW_AT_FRACTION;
    const tokens: LlmToken[] = [];
    for (const id of executionIds) {
      const expiresAt = this.issued.get(id);
      if (expiresAt === undefined || expiresAt < threshold) tokens.push(this.issue(id, now));
    }
    return tokens;
  }

  /** The execution ended: stop renewing (its tokens are refused anyway, by the state check). */
  forget(executionId: string): void {
    this.issued.delete(executionId);
    this.active.delete(executionId);
  }

  /** The gateway found this execution running in the store: believe it for ACTIVE_CACHE_MS. */
  rememberActive(execution: ActiveExecution, now: number): void {
    this.active.set(execution.executionId, { execution, until: now + ACTIVE_CACHE_MS });
  }

  /** A running execution seen less than ACTIVE_CACHE_MS ago and not forgotten since. */
  recentlyActive(executionId: string, now: number): ActiveExecution | undefined {
    const entry = this.active.get(executionId);
    if (!entry) return undefined;
    if (entry.until > now) return entry.execution;
    this.active.delete(executionId);
    return undefined;
  }

  /** Signature and expiry; the caller checks that the execution still runs. */
  verify(token: string, now: number): TokenCheck {
    // A token whose signature was checked before is not signed again on every model call.
    const known = this.verified.get(token);
    if (known) {
      if (known.expiresAtMs > now) return { ok: true, executionId: known.executionId, expiresAtMs: known.expiresAtMs };
      this.verified.delete(token);
    }
    const check = this.verifySignature(token, now);
    if (check.ok) {
      if (this.verified.size >= VERIFIED_CACHE_LIMIT) this.verified.clear();
      this.verified.set(token, { executionId: check.executionId, expiresAtMs: check.expiresAtMs });
    }
    return check;
  }

  private verifySignature(token: string, now: number): TokenCheck {
    const match = TOKEN_PATTERN.exec(token);
    if (!match) return { ok: false, reason: 'malformed' };
    const executionId = match[1]!;
    const expiresAtMs = Number(match[2]);
    const expected = Buffer.from(this.sign(executionId, expiresAtMs), 'utf8');
    const actual = Buffer.from(match[3]!, 'utf8');
    if (actual.length !== SIGNATURE_LENGTH || !timingSafeEqual(expected, actual)) return { ok: false, reason: 'signature' };
    if (expiresAtMs <= now) return { ok: false, reason: 'expired', executionId };
    return { ok: true, executionId, expiresAtMs };
  }

  private prune(now: number): void {
    this.issuesSincePrune = 0;
    for (const [id, expiresAt] of this.issued) if (expiresAt <= now) this.issued.delete(id);
    for (const [id, entry] of this.active) if (entry.until <= now) this.active.delete(id);
  }
}
