/**
 * The worker's redactor: everything a task says passes through it before it leaves the data
 * plane. It replaces configured secret values — and their base64, base64url, URL-encoded,
 * JSON-escaped and hex forms — with `[REDACTED:<name>]`, and well-known credential formats
 * (GitHub, GitLab, AWS, Slack, OpenAI, Anthropic, PEM private keys, Airlock API keys) with
 * `[REDACTED:<pattern>]`.
 *
 * Invariants:
 * - No output contains a configured secret or any of its encoded forms (`encodedForms`), whatever
 *   surrounds it. Replacement markers are checked at construction: a secret that could overlap a
 *   marker (a value like "ACTED:KEY]x") gets a marker made of a character no secret contains.
 * - Text that contains no secret form and no pattern comes out unchanged (the same string).
 * - A stream redactor's outputs, concatenated, equal `redactText` of its inputs concatenated,
 *   however the input was split; it holds back only text where a match may still be in progress.
 *
 * Secret values shorter than MIN_SECRET_LENGTH are ignored (reported through `onWarning`).
 * Matching is on UTF-16 code units and case-sensitive (hex is tried in both cases).
 */
import { encodedForms } from './forms.js';
import { LiteralMatcher } from './literals.js';
import { BOUNDARY_SOURCE, builtinPatterns, type TokenPattern } from './patterns.js';

/**
 * Shorter values would shred ordinary text: a 4-character password "test" would redact every
 * "test" in a build log, and such a value protects nothing anyway. Six is the shortest value we
 * still treat as a secret; the operator is told about every value we skip.
 */
export const MIN_SECRET_LENGTH = 6;

/** Secret names appear in markers and logs: the characters of environment and file names. */
const SECRET_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/** Candidates for the fallback marker character, tried in order until one appears in no secret form. */
const FALLBACK_MARKER_CHARS = '*#~%^|!@█░▒▓';
/** Long enough to be seen, short enough not to swamp a line. */
const FALLBACK_MARKER_LENGTH = 10;

/**
 * How far back a pattern's regex looks before a match (the `(?<![A-Za-z0-9])` boundary): the
 * stream keeps this many characters of already-released text as context.
 */
const LOOKBEHIND_CHARS = 1;

export interface RedactorSecret {
  /** Shown in the marker: `[REDACTED:<name>]`. Letters, digits, `_`, `.` and `-`. */
  name: string;
  value: string;
}

export interface RedactorOptions {
  secrets: readonly RedactorSecret[];
  /** Told about every secret that cannot be used as given (too short) or gets a fallback marker. */
  onWarning?: (message: string) => void;
  /** Also replace well-known credential formats (default true). */
  patterns?: boolean;
}

/** Redacts a text that arrives in pieces. Create one per stream (stdout, stderr…). */
export interface StreamRedactor {
  /** Redact `chunk`; returns what can be released now (may be shorter or longer than `chunk`). */
  push(chunk: string): string;
  /**
   * Release everything held back. The stream stays usable, but a secret split exactly across a
   * flush is not recognised: flush when the stream ends or has been idle for a while.
   */
  flush(): string;
}

interface Match {
  index: number;
  length: number;
  marker: string;
}

export class Redactor {
  private readonly literals: LiteralMatcher | undefined;
  /** The marker of each secret form, in the order the literal matcher numbers them. */
  private readonly literalMarkers: string[] = [];
  /** Every pattern in one regex, each in its own capture group (group i + 1 ↔ patterns[i]). */
  private readonly patternRegex: RegExp | undefined;
  private readonly patterns: Array<{ pattern: TokenPattern; marker: string }> = [];

  constructor(options: RedactorOptions) {
    const warn = options.onWarning ?? (() => undefined);
    const literalNames = new Map<string, string>();
    for (const secret of options.secrets) {
      if (!SECRET_NAME.test(secret.name)) {
        throw new Error(
          `secret name ${JSON.stringify(secret.name)} cannot be used in redaction markers — use 1–128 letters, digits, "_", "." or "-" (an environment variable name works)`,
        );
      }
      if (secret.value.length < MIN_SECRET_LENGTH) {
        if (secret.value.length > 0) {
          warn(
            `the value of ${secret.name} is shorter than ${MIN_SECRET_LENGTH} characters and will NOT be redacted (redacting it would shred ordinary text) — use a longer secret`,
          );
        }
        continue;
      }
      // A value read from a file often ends in a newline that the task never prints: match both.
      const values = [secret.value];
      const trimmed = secret.value.trim();
      if (trimmed !== secret.value && trimmed.length >= MIN_SECRET_LENGTH) values.push(trimmed);
      for (const value of values) {
        for (const form of encodedForms(value)) {
          if (!literalNames.has(form)) literalNames.set(form, secret.name);
        }
      }
    }
    const patterns = options.patterns === false ? [] : builtinPatterns();
    const markers = chooseMarkers([...literalNames.values(), ...patterns.map((p) => p.name)], [...literalNames.keys()], warn);
    for (const name of literalNames.values()) this.literalMarkers.push(markers.get(name)!);
    this.literals = literalNames.size > 0 ? new LiteralMatcher([...literalNames.keys()]) : undefined;
    for (const pattern of patterns) this.patterns.push({ pattern, marker: markers.get(pattern.name)! });
    this.patternRegex = patterns.length > 0 ? new RegExp(combinedPatternSource(patterns), 'g') : undefined;
  }

  /** Replace every secret form and credential pattern in `text`. */
  redactText(text: string): string {
    return this.redactFrom(text, 0, true).out;
  }

  /**
   * Redact every string in a JSON-like value: object values and keys, array items, nested to any
   * depth. Numbers, booleans and null pass as they are; the shape is preserved.
   */
  redactValue<T>(value: T): T {
    return this.redactAny(value) as T;
  }

  streamRedactor(): StreamRedactor {
    let pending = '';
    let context = '';
    const drain = (final: boolean): string => {
      if (pending.length === 0) return '';
      const text = context + pending;
      const { out, released } = this.redactFrom(text, context.length, final);
      if (released > 0) context = text.slice(Math.max(0, released - LOOKBEHIND_CHARS), released);
      pending = text.slice(released);
      return out;
    };
    return {
      push: (chunk: string) => {
        pending += chunk;
        return drain(false);
      },
      flush: () => drain(true),
    };
  }

  /**
   * Redact `text` from `start` (what lies before is context only). Unless `final`, stop before
   * the first place where a match may still be in progress. Returns the output and the index up
   * to which `text` was consumed.
   */
  private redactFrom(text: string, start: number, final: boolean): { out: string; released: number } {
    let cursor = start;
    let hold = final ? text.length : this.earliestUndecided(text, cursor);
    const literals = this.literals?.scanner(text);
    const nextLiteral = (from: number): Match | undefined => {
      const found = literals?.next(from);
      return found && { index: found.index, length: found.length, marker: this.literalMarkers[found.literal]! };
    };
    let literal = nextLiteral(cursor);
    let pattern = this.nextPattern(text, cursor);
    const parts: string[] = [];
    for (;;) {
      // The leftmost match wins; at the same index a secret form wins over a pattern.
      const next = literal && (!pattern || literal.index <= pattern.index) ? literal : pattern;
      if (!next || next.index >= hold) break;
      parts.push(text.slice(cursor, next.index), next.marker);
      cursor = next.index + next.length;
      if (hold < cursor) hold = this.earliestUndecided(text, cursor);
      if (literal && literal.index < cursor) literal = nextLiteral(cursor);
      if (pattern && pattern.index < cursor) pattern = this.nextPattern(text, cursor);
    }
    // Never end a release between the two halves of a surrogate pair.
    if (!final && hold > cursor && isHighSurrogate(text.charCodeAt(hold - 1))) hold--;
    if (cursor === 0 && hold === text.length) return { out: text, released: hold };
    parts.push(text.slice(cursor, hold));
    return { out: parts.join(''), released: hold };
  }

  private nextPattern(text: string, from: number): Match | undefined {
    const regex = this.patternRegex;
    if (!regex) return undefined;
    regex.lastIndex = from;
    const match = regex.exec(text);
    if (!match) return undefined;
    for (let group = 1; group < match.length; group++) {
      if (match[group] !== undefined) return { index: match.index, length: match[0].length, marker: this.patterns[group - 1]!.marker };
    }
    throw new Error('redactor: a pattern matched without its capture group — the combined pattern source is inconsistent');
  }

  /** The first index ≥ `from` where a match may start that more input could still change. */
  private earliestUndecided(text: string, from: number): number {
    const end = text.length;
    let best = this.literals ? this.literals.earliestUndecided(text, from) : end;
    for (const { pattern } of this.patterns) {
      const low = Math.max(from, end - pattern.maxLength + 1);
      for (const prefix of pattern.prefixes) {
        let index = text.indexOf(prefix, low);
        while (index !== -1 && index < best) {
          if (pattern.undecided(text, index)) {
            best = index;
            break;
          }
          index = text.indexOf(prefix, index + 1);
        }
        for (let i = Math.max(low, end - prefix.length + 1); i < Math.min(end, best); i++) {
          if (isPrefixOfAt(text, i, prefix) && pattern.undecided(text, i)) {
            best = i;
            break;
          }
        }
      }
    }
    return best;
  }

  private redactAny(value: unknown): unknown {
    if (typeof value === 'string') return this.redactText(value);
    if (Array.isArray(value)) return value.map((item) => this.redactAny(item));
    if (value !== null && typeof value === 'object') {
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) return value;
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) out[this.redactText(key)] = this.redactAny(item);
      return out;
    }
    return value;
  }
}

/**
 * One regex source for all patterns, each in a capture group, in order. Consecutive patterns that
 * need the token boundary share one lookbehind (V8 scans that form several times faster).
 */
function combinedPatternSource(patterns: readonly TokenPattern[]): string {
  const parts: string[] = [];
  let run: string[] = [];
  const closeRun = () => {
    if (run.length > 0) parts.push(`${BOUNDARY_SOURCE}(?:${run.join('|')})`);
    run = [];
  };
  for (const pattern of patterns) {
    if (pattern.boundary) {
      run.push(`(${pattern.source})`);
    } else {
      closeRun();
      parts.push(`(${pattern.source})`);
    }
  }
  closeRun();
  return parts.join('|');
}

/** True when text[start..] (to its end) is a prefix of `prefix`. */
function isPrefixOfAt(text: string, start: number, prefix: string): boolean {
  for (let i = start, k = 0; i < text.length; i++, k++) {
    if (k >= prefix.length || text.charCodeAt(i) !== prefix.charCodeAt(k)) return false;
  }
  return true;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** True when `form` and `marker` could overlap in an output: one inside the other, or sharing an edge. */
function overlaps(form: string, marker: string): boolean {
  if (marker.includes(form) || form.includes(marker)) return true;
  const limit = Math.min(form.length, marker.length) - 1;
  for (let k = 1; k <= limit; k++) {
    if (marker.endsWith(form.slice(0, k)) || form.endsWith(marker.slice(0, k))) return true;
  }
  return false;
}

/**
 * The marker for each name: `[REDACTED:<name>]`, unless some secret form could overlap that
 * marker in an output (then a secret could reappear next to its own replacement). Such names get
 * a marker made of one character that occurs in no secret form, which nothing can overlap.
 */
function chooseMarkers(names: string[], forms: string[], warn: (message: string) => void): Map<string, string> {
  const markers = new Map<string, string>();
  // Only forms containing a bracket can share an edge with or contain a marker; any form may lie inside one.
  const bracketed = forms.filter((f) => f.includes('[') || f.includes(']'));
  let fallback: string | undefined;
  for (const name of new Set(names)) {
    const marker = `[REDACTED:${name}]`;
    const clash = forms.some((f) => marker.includes(f)) || bracketed.some((f) => overlaps(f, marker));
    if (!clash) {
      markers.set(name, marker);
      continue;
    }
    fallback ??= fallbackMarker(forms);
    warn(`a secret value could overlap the marker ${marker}; occurrences of ${name} are replaced by "${fallback}" instead`);
    markers.set(name, fallback);
  }
  return markers;
}

function fallbackMarker(forms: string[]): string {
  const used = new Set<string>();
  for (const form of forms) for (const char of form) used.add(char);
  for (const char of FALLBACK_MARKER_CHARS) if (!used.has(char)) return char.repeat(FALLBACK_MARKER_LENGTH);
  for (let code = 0x2500; code < 0xd800; code++) {
    const char = String.fromCharCode(code);
    if (!used.has(char)) return char.repeat(FALLBACK_MARKER_LENGTH);
  }
  throw new Error('no character is free to build a redaction marker: the configured secrets use every character — this cannot happen with real secrets');
}
