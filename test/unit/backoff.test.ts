import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src/lib/backoff.js';

describe('capped exponential backoff with full jitter', () => {
  it('never exceeds min(cap, base·2^attempt) and never goes negative', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 100_000 }), fc.array(fc.double({ min: 0, max: 0.999999, noNaN: true }), { minLength: 1, maxLength: 60 }), (base, cap, draws) => {
        let i = 0;
        const backoff = new Backoff({ baseMs: base, capMs: cap, random: () => draws[i % draws.length]! });
        for (let attempt = 0; attempt < draws.length; attempt++, i++) {
          const delay = backoff.next();
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThanOrEqual(Math.min(cap, base * 2 ** attempt));
        }
      }),
    );
  });

  it('spreads delays over the whole window (full jitter), and reset starts over', () => {
    const backoff = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999 });
    const delays = Array.from({ length: 6 }, () => backoff.next());
    expect(delays).toEqual([99, 199, 399, 799, 999, 999]);
    backoff.reset();
    expect(backoff.next()).toBe(99);
  });
});
