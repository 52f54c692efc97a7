/**
 * A small glob matcher for the search tools (Node 20 has no stable `fs.glob`): `*` and `?` within
 * one path segment, `**` across segments, `[abc]`/`[!a-z]` classes, `{a,b}` alternatives (nested),
 * `\` to escape. Patterns are matched against `/`-separated paths relative to the working directory.
 *
 * Invariant: no wildcard but `**` ever matches a `/`; the compiled RegExp is anchored at both ends
 * and built only from escaped literals and fixed fragments (no pattern text reaches it unescaped).
 */

const REGEX_SPECIAL = /[.*+?^${}()|[\]\\/]/g;

function escapeLiteral(text: string): string {
  return text.replace(REGEX_SPECIAL, '\\$&');
}

export class GlobSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GlobSyntaxError';
  }
}

/** The regular expression source for `pattern` (unanchored). */
function compile(pattern: string): string {
  let out = '';
  let braceDepth = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      const next = pattern[i + 1];
      if (next === undefined) throw new GlobSyntaxError(`the glob ${JSON.stringify(pattern)} ends with a lone "\\" — remove it or escape a character after it`);
      out += escapeLiteral(next);
      i++;
    } else if (c === '*') {
      if (pattern[i + 1] === '*') {
        const atSegmentStart = i === 0 || pattern[i - 1] === '/';
        const after = pattern[i + 2];
        if (atSegmentStart && after === '/') {
          out += '(?:[^/]*/)*'; // "**/": zero or more whole directories
          i += 2;
          continue;
        }
        if (atSegmentStart && after === undefined) {
          out += '.*'; // trailing "**": everything below
          i += 1;
          continue;
        }
        // "**" inside a segment ("a**b") is just two stars
        out += '[^/]*';
        i += 1;
        continue;
      }
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close === -1) {
        out += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, close);
      let negate = false;
      if (body.startsWith('!') || body.startsWith('^')) {
        negate = true;
        body = body.slice(1);
      }
      // Keep ranges ("a-z"), escape everything else that is special inside a class.
      const inner = body.replace(/[\\\]^[]/g, '\\$&');
      out += negate ? `(?!/)[^${inner}]` : `(?!/)[${inner}]`;
      i = close;
    } else if (c === '{') {
      braceDepth++;
      out += '(?:';
    } else if (c === '}' && braceDepth > 0) {
      braceDepth--;
      out += ')';
    } else if (c === ',' && braceDepth > 0) {
      out += '|';
    } else {
      out += escapeLiteral(c);
    }
  }
  if (braceDepth > 0) throw new GlobSyntaxError(`the glob ${JSON.stringify(pattern)} has an unclosed "{" — close it or escape it as "\\{"`);
  return out;
}

export interface GlobOptions {
  /** A pattern without "/" matches the last segment at any depth ("*.ts" finds "src/a.ts"). */
  matchBase?: boolean;
}

/** A predicate for relative `/`-separated paths; throws `GlobSyntaxError` for a malformed pattern. */
export function globMatcher(pattern: string, options: GlobOptions = {}): (relativePath: string) => boolean {
  let normalised = pattern.startsWith('./') ? pattern.slice(2) : pattern;
  if (options.matchBase && !normalised.includes('/')) normalised = `**/${normalised}`;
  let regex: RegExp;
  try {
    regex = new RegExp(`^${compile(normalised)}$`, 'u');
  } catch (err) {
    if (err instanceof GlobSyntaxError) throw err;
    throw new GlobSyntaxError(`the glob ${JSON.stringify(pattern)} is malformed (${(err as Error).message}) — check its [] classes`);
  }
  return (relativePath) => regex.test(relativePath);
}
