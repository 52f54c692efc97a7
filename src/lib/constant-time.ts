/**
 * Constant-time string comparison for secrets (task tokens, API keys). Both sides are hashed to
 * a fixed 32-byte digest first, so neither the position of the first difference nor the length of
 * the expected value leaks through timing.
 *
 * Invariant: `constantTimeEqual(a, b) === (a === b)` for every pair of JavaScript strings,
 * including ones with unpaired surrogates (they are hashed as UTF-16 code units, not as UTF-8,
 * where every lone surrogate would collapse to U+FFFD and distinct strings would compare equal).
 */
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(value: string): Buffer {
  return createHash('sha256').update(Buffer.from(value, 'utf16le')).digest();
}

export function constantTimeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}
