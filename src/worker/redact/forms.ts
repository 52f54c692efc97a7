/**
 * The encoded forms of a secret value that the redactor looks for, besides the value itself: the
 * ways a task can print a secret without meaning to (a curl trace, a JSON log line, a hex dump, a
 * basic-auth header, a base64 blob that embeds it).
 *
 * Invariant: every form is a pure function of the value's own bytes — a base64 form keeps only
 * the characters that do not depend on the bytes around the value, so it is found whatever the
 * value is embedded in.
 */

/** Characters encodeURIComponent leaves as they are (RFC 3986 unreserved, plus !*'() ). */
const URI_UNRESERVED = /^[A-Za-z0-9\-_.!~*'()]$/;

/**
 * The base64 characters of `bytes` that stay the same wherever the bytes sit inside a longer
 * base64 text, for the alignment where `offset` (0, 1 or 2) bytes precede them in their 3-byte
 * group. A character covers 6 bits; it is stable when all 6 fall inside the value's bits.
 */
export function base64Core(bytes: Buffer, offset: 0 | 1 | 2, alphabet: 'base64' | 'base64url'): string {
  const padded = Buffer.concat([Buffer.alloc(offset), bytes]);
  const encoded = padded.toString(alphabet);
  const firstBit = 8 * offset;
  const endBit = 8 * (offset + bytes.length);
  const first = Math.ceil(firstBit / 6);
  const last = Math.floor((endBit - 6) / 6);
  return last >= first ? encoded.slice(first, last + 1) : '';
}

/** encodeURIComponent over UTF-8 bytes, without throwing on unpaired surrogates (they become U+FFFD). */
export function percentEncode(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && URI_UNRESERVED.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The body of a JSON string literal, as JSON.stringify writes it. */
export function jsonEscape(value: string): string {
  return JSON.stringify(value).slice(1, -1);
}

/** The body of a JSON string literal written with every non-ASCII character as \uXXXX (Python's default). */
export function jsonEscapeAscii(value: string): string {
  return jsonEscape(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Every form of `value` the redactor replaces: the value; its JSON-escaped, URL-encoded
 * (encodeURIComponent and form encoding with `+`), and hex (lower and upper case) forms; its
 * standalone base64/base64url encodings; and the stable core of its base64/base64url encoding at
 * each of the three byte alignments. Deduplicated, longest first, empty forms dropped.
 */
export function encodedForms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const forms = new Set<string>([value, jsonEscape(value), jsonEscapeAscii(value)]);
  const uri = percentEncode(value);
  forms.add(uri);
  forms.add(uri.replace(/%20/g, '+'));
  forms.add(bytes.toString('hex'));
  forms.add(bytes.toString('hex').toUpperCase());
  forms.add(bytes.toString('base64'));
  forms.add(bytes.toString('base64url'));
  for (const offset of [0, 1, 2] as const) {
    forms.add(base64Core(bytes, offset, 'base64'));
    forms.add(base64Core(bytes, offset, 'base64url'));
  }
  forms.delete('');
  return [...forms].sort((a, b) => b.length - a.length || (a < b ? -1 : a > b ? 1 : 0));
}
