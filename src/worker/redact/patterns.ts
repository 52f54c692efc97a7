/**
 * Well-known credential formats the redactor replaces even when nobody configured them as
 * secrets: a token a task finds in a file or an API response is as dangerous as one it was given.
 *
 * Each pattern is described once, as data (`segments`), and both its regular expression and its
 * streaming test ("could more input still change the match that starts here?") are generated from
 * that description, so the one-shot and the streaming redactor cannot disagree.
 *
 * Invariants:
 * - A pattern's regex looks behind at most ONE character (the token boundary), so a streaming
 *   redactor needs to keep exactly one character of context before the text it still holds.
 * - Every match is bounded (`maxLength`), so a stream never holds back more than that.
 * - Segments are greedy and never need backtracking: a variable-length class is either the last
 *   segment or followed by a literal whose first character is outside the class.
 */

/** Tokens are at most this long after their prefix: well above every real format, and it bounds hold-back. */
const MAX_TOKEN_BODY = 255;
/**
 * A PEM body is at most this many characters: an 8192-bit RSA private key is about 6.5 KB of
 * base64, so 16 KiB covers every real key while bounding what a stream holds back.
 */
const MAX_PEM_BODY = 16 * 1024;
/** Room for the key type between "BEGIN " and "PRIVATE KEY" ("ENCRYPTED ", "OPENSSH ", "RSA "…). */
const MAX_PEM_LABEL = 40;

export interface TokenPattern {
  /** The name shown in the replacement: `[REDACTED:<name>]`. */
  readonly name: string;
  /** Regex source of one match, without the boundary (no flags; the redactor combines every pattern into one regex). */
  readonly source: string;
  /** When set, a match may not follow a letter or digit: the redactor puts BOUNDARY_SOURCE before `source`. */
  readonly boundary: boolean;
  /** Literal(s) every match starts with: where a stream looks for matches still in progress. */
  readonly prefixes: readonly string[];
  /** Longest possible match, in UTF-16 code units. */
  readonly maxLength: number;
  /**
   * Given that `text` ends here (more may follow), can more input still change whether a match
   * starts at `start`, or where it ends? False means the outcome at `start` is final.
   */
  undecided(text: string, start: number): boolean;
}

type Segment = { lit: string } | { cls: string; test: (code: number) => boolean; min: number; max: number };

const isAlnum = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isUpperOrDigit = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 90);
const isAlnumUnderscore = (c: number): boolean => isAlnum(c) || c === 95;
const isAlnumDash = (c: number): boolean => isAlnum(c) || c === 45;
const isAlnumUnderscoreDash = (c: number): boolean => isAlnum(c) || c === 95 || c === 45;
const isAlnumUnderscoreDashDot = (c: number): boolean => isAlnumUnderscoreDash(c) || c === 46;
const isBase32Lower = (c: number): boolean => (c >= 97 && c <= 122) || (c >= 50 && c <= 55);
const isSlackKind = (c: number): boolean => 'abposr'.includes(String.fromCharCode(c));

/** A token may not start in the middle of a word: "task-…" must not look like an "sk-…" key. */
export const BOUNDARY_SOURCE = '(?<![A-Za-z0-9])';
const isBoundaryChar = isAlnum;

export function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

function segmentSource(segment: Segment): string {
  if ('lit' in segment) return escapeRegExp(segment.lit);
  return segment.min === segment.max ? `${segment.cls}{${segment.min}}` : `${segment.cls}{${segment.min},${segment.max}}`;
}

/** A token: boundary, literal prefix, then segments, matched greedily. */
function token(name: string, prefix: string, body: Segment[]): TokenPattern {
  const segments: Segment[] = [{ lit: prefix }, ...body];
  const maxLength = segments.reduce((sum, s) => sum + ('lit' in s ? s.lit.length : s.max), 0);
  return {
    name,
    source: segments.map(segmentSource).join(''),
    boundary: true,
    prefixes: [prefix],
    maxLength,
    undecided(text, start) {
      if (start > 0 && isBoundaryChar(text.charCodeAt(start - 1))) return false;
      let p = start;
      const end = text.length;
      for (const segment of segments) {
        if ('lit' in segment) {
          for (let i = 0; i < segment.lit.length; i++, p++) {
            if (p === end) return true;
            if (text.charCodeAt(p) !== segment.lit.charCodeAt(i)) return false;
          }
        } else {
          let count = 0;
          while (count < segment.max && p < end && segment.test(text.charCodeAt(p))) {
            p++;
            count++;
          }
          if (count < segment.max && p === end) return true;
          if (count < segment.min) return false;
        }
      }
      return false;
    },
  };
}

const PEM_HEADER_SOURCE = `-----BEGIN [A-Z0-9 ]{0,${MAX_PEM_LABEL}}PRIVATE KEY-----`;
const PEM_FOOTER_SOURCE = `-----END [A-Z0-9 ]{0,${MAX_PEM_LABEL}}PRIVATE KEY-----`;
/** The body: any characters except two dashes in a row (where the footer, or anything else, begins). */
const PEM_BODY_SOURCE = `(?:[^-]|-(?!-)){0,${MAX_PEM_BODY}}`;

/** Regex matching every proper prefix (including "") of `literal`: (?:a(?:b(?:c)?)?)? for "abcd". */
function properPrefixSource(literal: string): string {
  let source = '';
  for (let i = literal.length - 2; i >= 0; i--) source = `(?:${escapeRegExp(literal[i]!)}${source})?`;
  return source;
}

/** "-----BEGIN " + label + "PRIVATE KEY-----" cut short anywhere: `text` ends inside a PEM header line. */
function pemLinePrefixRe(word: 'BEGIN' | 'END'): RegExp {
  const lead = `-----${word} `;
  return new RegExp(`^(?:${properPrefixSource(lead)}|${escapeRegExp(lead)}[A-Z0-9 ]{0,${MAX_PEM_LABEL}}${properPrefixSource('PRIVATE KEY-----')})$`);
}

/**
 * A PEM private key block: header, body, footer. A block cut off before its footer (a truncated
 * `cat`) is still redacted up to where its body ends, so a partial key never leaks either.
 */
function pemPrivateKey(): TokenPattern {
  const header = new RegExp(PEM_HEADER_SOURCE, 'y');
  const footer = new RegExp(PEM_FOOTER_SOURCE, 'y');
  const headerPrefix = pemLinePrefixRe('BEGIN');
  const footerPrefix = pemLinePrefixRe('END');
  const dash = 45;
  return {
    name: 'private-key',
    source: `${PEM_HEADER_SOURCE}${PEM_BODY_SOURCE}(?:${PEM_FOOTER_SOURCE})?`,
    boundary: false,
    prefixes: ['-----BEGIN '],
    maxLength: '-----BEGIN '.length + MAX_PEM_LABEL + 'PRIVATE KEY-----'.length * 2 + MAX_PEM_BODY + '-----END '.length + MAX_PEM_LABEL,
    undecided(text, start) {
      header.lastIndex = start;
      const head = header.exec(text);
      if (!head) return headerPrefix.test(text.slice(start));
      const end = text.length;
      let p = start + head[0].length;
      let count = 0;
      while (count < MAX_PEM_BODY && p < end) {
        if (text.charCodeAt(p) === dash) {
          if (p + 1 === end) return true; // is the next character a dash? not known yet
          if (text.charCodeAt(p + 1) === dash) break;
        }
        p++;
        count++;
      }
      if (count < MAX_PEM_BODY && p === end) return true;
      footer.lastIndex = p;
      if (footer.test(text)) return false;
      return footerPrefix.test(text.slice(p));
    },
  };
}

const body = (cls: string, test: (c: number) => boolean, min: number, max: number): Segment => ({ cls, test, min, max });

/**
 * The built-in patterns, most specific first (the first that matches at a position wins:
 * Anthropic's `sk-ant-` before OpenAI's `sk-`).
 */
export function builtinPatterns(): TokenPattern[] {
  const githubBody = body('[A-Za-z0-9]', isAlnum, 30, MAX_TOKEN_BODY);
  return [
    ...['ghp_', 'gho_', 'ghs_', 'ghu_', 'ghr_'].map((prefix) => token('github-token', prefix, [githubBody])),
    token('github-token', 'github_pat_', [body('[A-Za-z0-9_]', isAlnumUnderscore, 22, MAX_TOKEN_BODY)]),
    token('gitlab-token', 'glpat-', [body('[A-Za-z0-9_.\\-]', isAlnumUnderscoreDashDot, 20, MAX_TOKEN_BODY)]),
    token('aws-access-key-id', 'AKIA', [body('[A-Z0-9]', isUpperOrDigit, 16, 16)]),
    token('aws-access-key-id', 'ASIA', [body('[A-Z0-9]', isUpperOrDigit, 16, 16)]),
    token('slack-token', 'xox', [body('[abposr]', isSlackKind, 1, 1), { lit: '-' }, body('[A-Za-z0-9\\-]', isAlnumDash, 10, MAX_TOKEN_BODY)]),
    token('anthropic-api-key', 'sk-ant-', [body('[A-Za-z0-9_\\-]', isAlnumUnderscoreDash, 20, MAX_TOKEN_BODY)]),
    token('openai-api-key', 'sk-', [body('[A-Za-z0-9_\\-]', isAlnumUnderscoreDash, 20, MAX_TOKEN_BODY)]),
    token('airlock-api-key', 'alk_', [body('[a-z2-7]', isBase32Lower, 20, 20), { lit: '_' }, body('[A-Za-z0-9]', isAlnum, 32, 32)]),
    pemPrivateKey(),
  ];
}
