// The redactor's promises, as properties: whatever surrounds a secret and however the text is
// chunked, no output contains the secret or an encoded form of it; text without secrets passes
// through unchanged; a stream redactor's output equals the one-shot output.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MIN_SECRET_LENGTH, Redactor, encodedForms } from '../../src/worker/redact/index.js';
import { LiteralMatcher } from '../../src/worker/redact/literals.js';

/** Encoded forms computed independently of the implementation (forms.ts), from Node's own encoders. */
function oracleForms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms = [secret, JSON.stringify(secret).slice(1, -1), bytes.toString('hex'), bytes.toString('hex').toUpperCase()];
  try {
    forms.push(encodeURIComponent(secret));
  } catch {
    // unpaired surrogate: encodeURIComponent refuses it, so a task could not produce this form either
  }
  // The base64 characters that depend only on the secret's bytes, for each alignment, found by
  // encoding the secret between random neighbours and keeping what never changes.
  for (const offset of [0, 1, 2]) {
    for (const alphabet of ['base64', 'base64url'] as const) {
      const samples = [0x00, 0xff, 0x5a].map((fill) =>
        Buffer.concat([Buffer.alloc(offset + 3, fill), bytes, Buffer.alloc(3, fill)]).toString(alphabet),
      );
      const shift = ((offset + 3) * 4) / 3; // whole characters before the secret's group
      const stable: string[] = [];
      let current = '';
      const first = samples[0]!;
      for (let i = Math.floor(shift); i < first.length; i++) {
        if (samples.every((s) => s[i] === first[i])) current += first[i];
        else {
          if (current) stable.push(current);
          current = '';
        }
      }
      if (current) stable.push(current);
      const longest = stable.sort((a, b) => b.length - a.length)[0];
      if (longest && longest.length >= 4) forms.push(longest);
    }
  }
  return forms;
}

const secretArb = fc
  .oneof(
    fc.string({ minLength: MIN_SECRET_LENGTH, maxLength: 40 }),
    fc.string({ minLength: MIN_SECRET_LENGTH, maxLength: 24, unit: 'binary' }),
    fc.stringMatching(/^[A-Za-z0-9+/=_-]{6,48}$/),
    fc.string({ minLength: MIN_SECRET_LENGTH, maxLength: 16, unit: fc.constantFrom('[', ']', 'R', 'E', 'D', 'A', 'C', 'T', ':', 'S', '\\', '"', '%') }),
  )
  .filter((s) => s.length >= MIN_SECRET_LENGTH);

/** Splits `text` at the given cut points (taken modulo its length). */
function split(text: string, cuts: number[]): string[] {
  const points = [...new Set(cuts.map((c) => (text.length === 0 ? 0 : c % (text.length + 1))))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let last = 0;
  for (const point of points) {
    pieces.push(text.slice(last, point));
    last = point;
  }
  pieces.push(text.slice(last));
  return pieces;
}

function streamed(redactor: Redactor, pieces: string[]): string {
  const stream = redactor.streamRedactor();
  return pieces.map((p) => stream.push(p)).join('') + stream.flush();
}

/** One way a task might print the secret. */
function embed(secret: string, how: number, noise: Uint8Array): string {
  const bytes = Buffer.from(secret, 'utf8');
  const around = Buffer.from(noise);
  switch (how % 7) {
    case 0:
      return secret;
    case 1:
      return JSON.stringify({ token: secret });
    case 2:
      return `https://example.test/?q=${encodeURIComponentSafe(secret)}&x=1`;
    case 3:
      return bytes.toString('hex');
    case 4:
      return Buffer.concat([around.subarray(0, noise.length % 3), bytes, around]).toString('base64');
    case 5:
      return Buffer.concat([around.subarray(0, (noise.length + 1) % 3), bytes, around]).toString('base64url');
    default:
      return `Authorization: Basic ${Buffer.from(`user:${secret}`).toString('base64')}`;
  }
}

function encodeURIComponentSafe(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return text;
  }
}

describe('Redactor properties', () => {
  it('no output contains a secret or any encoded form, whatever surrounds it and however it is chunked', () => {
    fc.assert(
      fc.property(
        secretArb,
        fc.array(fc.tuple(fc.string({ maxLength: 30 }), fc.nat(), fc.uint8Array({ maxLength: 8 })), { minLength: 1, maxLength: 4 }),
        fc.string({ maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (secret, parts, tail, cuts) => {
          const redactor = new Redactor({ secrets: [{ name: 'TOKEN', value: secret }] });
          const text = parts.map(([before, how, noise]) => before + embed(secret, how, noise)).join('') + tail;
          const oneShot = redactor.redactText(text);
          const stream = streamed(redactor, split(text, cuts));
          for (const form of oracleForms(secret)) {
            expect(oneShot).not.toContain(form);
            expect(stream).not.toContain(form);
          }
          expect(stream).toBe(oneShot);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('text with no secret and no credential pattern passes through unchanged', () => {
    fc.assert(
      fc.property(secretArb, fc.string({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 6 }), (secret, text, cuts) => {
        fc.pre(!encodedForms(secret).some((form) => text.includes(form)));
        const redactor = new Redactor({ secrets: [{ name: 'TOKEN', value: secret }] });
        expect(redactor.redactText(text)).toBe(text);
        expect(streamed(redactor, split(text, cuts))).toBe(text);
      }),
      { numRuns: 400 },
    );
  });

  it('stream output equals one-shot output on text dense with partial secrets and patterns', () => {
    const fragments = [
      'ghp_', 'gho_', 'github_pat_', 'glpat-', 'sk-', 'sk-ant-', 'xoxb-', 'xox', 'AKIA', 'ASIA', 'alk_',
      'abcdefghij', 'ABCDEFGHIJKLMNOP', 'aaaaaaaaaaaaaaaaaaaa', '0123456789', '_', '-', '--', '---', '-----BEGIN ',
      'RSA ', 'PRIVATE KEY-----', '-----END ', 'PRIV', 'KEY', '\n', ' ', 'x', 'Z', '=', '\ud83d\ude00', '\ud83d', 'hunter2hunter',
      'hunter', 'aHVudGVy', '68756e746572', 'c2VjcmV0c2VjcmV0',
    ];
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...fragments), { maxLength: 60 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.boolean(),
        (parts, cuts, withSecrets) => {
          const redactor = new Redactor({
            secrets: withSecrets
              ? [
                  { name: 'A', value: 'hunter2hunter' },
                  { name: 'B', value: 'secretsecret' },
                  { name: 'C', value: 'abcdefghijabcdefghij' },
                ]
              : [],
          });
          const text = parts.join('');
          expect(streamed(redactor, split(text, cuts))).toBe(redactor.redactText(text));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('stream output equals one-shot output around PEM blocks, complete, cut off and malformed', () => {
    const fragments = ['-----BEGIN ', 'RSA ', 'PRIVATE KEY-----', 'MIIBOgIBAAJB', '\n', '-', '--', '-----END ', 'PRIVATE ', 'KEY', 'x', ' ', 'A'];
    const redactor = new Redactor({ secrets: [] });
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.constantFrom(...fragments), { maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (withHeader, parts, cuts) => {
          const text = (withHeader ? '-----BEGIN RSA PRIVATE KEY-----' : '') + parts.join('');
          expect(streamed(redactor, split(text, cuts))).toBe(redactor.redactText(text));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('stream output equals one-shot output for several arbitrary secrets and one-character chunks', () => {
    fc.assert(
      fc.property(fc.array(secretArb, { minLength: 1, maxLength: 3 }), fc.string({ maxLength: 80 }), (secrets, noise) => {
        const redactor = new Redactor({ secrets: secrets.map((value, i) => ({ name: `S${i}`, value })) });
        const text = noise + secrets.join(noise) + noise.slice(0, 5) + secrets[0]!.slice(0, -1);
        expect(streamed(redactor, [...text])).toBe(redactor.redactText(text));
      }),
      { numRuns: 300 },
    );
  });
});

describe('LiteralMatcher', () => {
  /** The leftmost occurrence, and the longest among those starting there: by brute force. */
  function naive(literals: string[], text: string, from: number) {
    for (let i = from; i < text.length; i++) {
      let best = -1;
      literals.forEach((l, j) => {
        if (text.startsWith(l, i) && (best < 0 || l.length > literals[best]!.length)) best = j;
      });
      if (best >= 0) return { index: i, length: literals[best]!.length };
    }
    return undefined;
  }

  it('both strategies (indexOf for a few literals, the automaton for many) find what brute force finds', () => {
    const unit = fc.constantFrom('a', 'b', 'c', 'ab', '\ud83d', '\ude00');
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ unit, minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 40 }),
        fc.string({ unit, maxLength: 60 }),
        (literals, text) => {
          const matcher = new LiteralMatcher(literals);
          const scanner = matcher.scanner(text);
          for (let from = 0; from <= text.length; from++) {
            const expected = naive(literals, text, from);
            const viaAutomaton = matcher.findLeftmost(text, from);
            const viaScanner = scanner.next(from);
            expect(viaAutomaton && { index: viaAutomaton.index, length: viaAutomaton.length }).toEqual(expected);
            expect(viaScanner && { index: viaScanner.index, length: viaScanner.length }).toEqual(expected);
            if (viaScanner) expect(literals[viaScanner.literal]).toBe(text.slice(viaScanner.index, viaScanner.index + viaScanner.length));
            if (viaAutomaton) expect(literals[viaAutomaton.literal]).toBe(text.slice(viaAutomaton.index, viaAutomaton.index + viaAutomaton.length));
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('Redactor examples', () => {
  const secret = 'pa55-w0rd-XYZ';
  const redactor = new Redactor({ secrets: [{ name: 'DB_PASSWORD', value: secret }] });

  it('replaces the value and its encoded forms with the secret name', () => {
    const forms = [
      secret,
      Buffer.from(secret).toString('base64'),
      Buffer.from(`u:${secret}`).toString('base64'),
      Buffer.from(`xy${secret}`).toString('base64url'),
      encodeURIComponent(`${secret}/?`),
      Buffer.from(secret).toString('hex'),
    ];
    for (const form of forms) {
      const out = redactor.redactText(`before ${form} after`);
      expect(out).toContain('[REDACTED:DB_PASSWORD]');
      expect(out).not.toContain(secret);
    }
    expect(redactor.redactText(`x=${secret}`)).toBe('x=[REDACTED:DB_PASSWORD]');
  });

  it('catches JSON-escaped secrets', () => {
    const tricky = new Redactor({ secrets: [{ name: 'Q', value: 'quote"back\\slash' }] });
    expect(tricky.redactText(JSON.stringify({ v: 'quote"back\\slash' }))).toBe('{"v":"[REDACTED:Q]"}');
  });

  it('matches a value with or without the trailing newline it was read with', () => {
    const fromFile = new Redactor({ secrets: [{ name: 'F', value: 'from-a-file-123\n' }] });
    expect(fromFile.redactText('token=from-a-file-123;')).toBe('token=[REDACTED:F];');
  });

  it('ignores secrets shorter than the minimum and says so', () => {
    const warnings: string[] = [];
    const r = new Redactor({ secrets: [{ name: 'SHORT', value: 'abc' }], onWarning: (m) => warnings.push(m) });
    expect(r.redactText('abc abc')).toBe('abc abc');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/SHORT.*shorter than 6 characters/);
  });

  it('refuses a secret name that cannot appear in a marker', () => {
    expect(() => new Redactor({ secrets: [{ name: 'bad name]', value: 'abcdefgh' }] })).toThrow(/secret name/);
  });

  it('falls back to a neutral marker when a secret could overlap its own marker', () => {
    const warnings: string[] = [];
    const r = new Redactor({ secrets: [{ name: 'K', value: 'ACTED:K]' }], onWarning: (m) => warnings.push(m) });
    const out = r.redactText('xx[REDACTED:K]yy ACTED:K]');
    expect(out).not.toContain('ACTED:K]');
    expect(warnings.join()).toMatch(/overlap/);
  });

  it.each([
    ['github-token', `ghp_${'A1b2'.repeat(9)}`],
    ['github-token', `github_pat_${'x'.repeat(22)}_${'Y'.repeat(59)}`],
    ['gitlab-token', 'glpat-abcdefghij0123456789'],
    ['aws-access-key-id', 'AKIAIOSFODNN7EXAMPLE'],
    ['aws-access-key-id', 'ASIAIOSFODNN7EXAMPLE'],
    ['slack-token', 'xoxb-1234567890-abcdefghij'],
    ['openai-api-key', `sk-proj-${'a'.repeat(40)}`],
    ['anthropic-api-key', `sk-ant-api03-${'b'.repeat(40)}`],
    ['airlock-api-key', `alk_${'a2'.repeat(10)}_${'Zz9'.repeat(10)}ab`],
  ])('redacts %s tokens', (name, value) => {
    const r = new Redactor({ secrets: [] });
    expect(r.redactText(`key: ${value}\n`)).toBe(`key: [REDACTED:${name}]\n`);
    expect(r.redactText(`"${value}"`)).toBe(`"[REDACTED:${name}]"`);
  });

  it('does not take a word that merely contains a token prefix for a token', () => {
    const r = new Redactor({ secrets: [] });
    const text = 'run task-abcdefghijklmnopqrstuvwxyz and disk-0123456789012345678901';
    expect(r.redactText(text)).toBe(text);
  });

  it('redacts PEM private keys, complete or cut off, and leaves what follows', () => {
    const r = new Redactor({ secrets: [] });
    const body = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n';
    const pem = `-----BEGIN RSA PRIVATE KEY-----\n${body}-----END RSA PRIVATE KEY-----`;
    expect(r.redactText(`before\n${pem}\nafter`)).toBe('before\n[REDACTED:private-key]\nafter');
    expect(r.redactText(`-----BEGIN PRIVATE KEY-----\n${body}`)).toBe('[REDACTED:private-key]');
    const encrypted = `-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,ABC\n\n${body}-----END ENCRYPTED PRIVATE KEY-----`;
    expect(r.redactText(encrypted)).toBe('[REDACTED:private-key]');
    expect(r.redactText('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----')).toContain('MIIB');
  });

  it('walks JSON values: strings in objects and arrays, keys included, other values untouched', () => {
    const value = { a: [secret, 1, true, null, { [secret]: `x${secret}` }], n: 3, s: 'plain' };
    expect(redactor.redactValue(value)).toEqual({
      a: ['[REDACTED:DB_PASSWORD]', 1, true, null, { '[REDACTED:DB_PASSWORD]': 'x[REDACTED:DB_PASSWORD]' }],
      n: 3,
      s: 'plain',
    });
  });

  it('holds back only a possible beginning of a secret, and releases plain text at once', () => {
    const stream = redactor.streamRedactor();
    expect(stream.push('hello world\n')).toBe('hello world\n');
    expect(stream.push('value: pa55-w0')).toBe('value: ');
    expect(stream.push('rd-XYZ done')).toBe('[REDACTED:DB_PASSWORD] done');
    expect(stream.push('pa55')).toBe('');
    expect(stream.push('ta')).toBe('pa55ta');
    expect(stream.flush()).toBe('');
  });

  it('holds a token in progress until it can no longer grow', () => {
    const stream = new Redactor({ secrets: [] }).streamRedactor();
    expect(stream.push('token sk-ant-')).toBe('token ');
    expect(stream.push('a'.repeat(30))).toBe('');
    expect(stream.push(' and more')).toBe('[REDACTED:anthropic-api-key] and more');
  });

  it('never releases half of a surrogate pair', () => {
    const stream = redactor.streamRedactor();
    const out = stream.push('smile \ud83d');
    expect(out).toBe('smile ');
    expect(stream.push('\ude00!')).toBe('\ud83d\ude00!');
  });

  it('flush releases what is held, and the stream goes on', () => {
    const stream = redactor.streamRedactor();
    expect(stream.push('pa55-w')).toBe('');
    expect(stream.flush()).toBe('pa55-w');
    expect(stream.push(` ${secret}`)).toBe(' [REDACTED:DB_PASSWORD]');
  });

  it('returns the very same string when there is nothing to redact', () => {
    const text = 'nothing to see here '.repeat(100);
    expect(redactor.redactText(text)).toBe(text);
  });
});
