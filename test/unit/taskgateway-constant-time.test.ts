// constantTimeEqual is the task gateway's token check: it must agree with === on every pair of
// strings, including hostile ones (lone surrogates, NULs, different lengths, shared prefixes).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { constantTimeEqual } from '../../src/lib/constant-time.js';

describe('constantTimeEqual', () => {
  it('agrees with === on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        expect(constantTimeEqual(a, b)).toBe(a === b);
        expect(constantTimeEqual(a, a)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('agrees with === on near misses', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.nat(), fc.string({ unit: 'binary', maxLength: 2 }), (token, at, edit) => {
        const i = at % token.length;
        const other = token.slice(0, i) + edit + token.slice(i + 1);
        expect(constantTimeEqual(token, other)).toBe(token === other);
        expect(constantTimeEqual(token, token + edit)).toBe(edit === '');
      }),
    );
  });

  it('tells apart strings that differ only in unpaired surrogates (which UTF-8 would merge)', () => {
    expect(constantTimeEqual('\ud800', '\ud801')).toBe(false);
    expect(constantTimeEqual('a\udc00', 'a\ufffd')).toBe(false);
    expect(constantTimeEqual('', '\0')).toBe(false);
  });
});
