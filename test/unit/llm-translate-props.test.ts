// Property tests of stream translation: whatever the arguments of the tool calls, however the
// model splits them into fragments, and however the network splits the bytes, every client API
// reassembles the same text and the same parsed arguments from every provider API.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SseParser } from '../../src/llm/sse.js';
import { createStreamTranslator } from '../../src/llm/translate/index.js';
import { createEncoder } from '../../src/llm/translate/encode-stream.js';
import type { CanonicalEvent } from '../../src/llm/translate/canonical.js';
import type { LlmApi } from '../../src/llm/index.js';
import { readStream } from '../support/llm-readers.js';

const APIS: LlmApi[] = ['chat', 'responses', 'messages'];

/** Split a string into pieces at the given cut points (code-point safe). */
function cut(value: string, cuts: number[]): string[] {
  const points = Array.from(value);
  const at = [...new Set(cuts.map((c) => c % (points.length + 1)))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let last = 0;
  for (const c of [...at, points.length]) {
    if (c > last) pieces.push(points.slice(last, c).join(''));
    last = c;
  }
  return pieces;
}

function splitBytes(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let last = 0;
  for (const c of [...at, bytes.length]) {
    if (c > last) chunks.push(bytes.subarray(last, c));
    last = c;
  }
  return chunks;
}

const jsonValue = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string({ unit: 'grapheme' }), { maxLength: 3 }));
const toolCall = fc.record({
  name: fc.stringMatching(/^[a-z_]{1,12}$/),
  arguments: fc.dictionary(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }), jsonValue, { maxKeys: 5 }),
  cuts: fc.array(fc.nat(200), { maxLength: 8 }),
});
const scenario = fc.record({
  text: fc.string({ unit: 'grapheme', maxLength: 40 }),
  textCuts: fc.array(fc.nat(60), { maxLength: 5 }),
  calls: fc.array(toolCall, { minLength: 1, maxLength: 3 }),
  byteCuts: fc.array(fc.nat(5000), { maxLength: 30 }),
});

describe.each(APIS)('from provider %s', (from) => {
  it.each(APIS)('to client %s: fragments and byte splits never change text or arguments', (to) => {
    fc.assert(
      fc.property(scenario, ({ text, textCuts, calls, byteCuts }) => {
        const events: CanonicalEvent[] = [{ type: 'start', id: 'up1', model: 'm' }, { type: 'usage', input: 10 }];
        for (const piece of cut(text, textCuts)) events.push({ type: 'text', text: piece });
        calls.forEach((call, index) => {
          events.push({ type: 'tool_start', index, id: `call_${index}`, name: call.name });
          for (const fragment of cut(JSON.stringify(call.arguments), call.cuts)) events.push({ type: 'tool_args', index, fragment });
        });
        events.push({ type: 'usage', output: 7 }, { type: 'finish', reason: 'tool_calls' });
        const upstream = createEncoder(from, { model: 'm', includeUsage: true });
        const upstreamText = events.map((e) => upstream.encode(e)).join('') + upstream.end();

        const translator = createStreamTranslator(from, to, { model: 'm', stream_options: { include_usage: true } });
        const parser = new SseParser();
        let client = '';
        for (const chunk of splitBytes(new TextEncoder().encode(upstreamText), byteCuts)) {
          for (const event of parser.push(chunk)) if (event.hasData) client += translator.push(event, event.data === '[DONE]' ? undefined : JSON.parse(event.data));
        }
        for (const event of parser.end()) if (event.hasData) client += translator.push(event, JSON.parse(event.data));
        client += translator.end();

        const answer = readStream(to, client);
        expect(answer.text).toBe(text);
        expect(answer.toolCalls.map((c) => c.name)).toEqual(calls.map((c) => c.name));
        expect(answer.toolCalls.map((c) => c.arguments)).toEqual(calls.map((c) => c.arguments));
        expect(answer.usage).toEqual({ input: 10, output: 7 });
      }),
      { numRuns: 60 },
    );
  });
});

describe('SSE parser', () => {
  it('yields the same events however the bytes are split, and raw text concatenates to the input', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ event: fc.option(fc.stringMatching(/^[a-z_.]{1,10}$/), { nil: undefined }), data: fc.string({ unit: 'grapheme' }).filter((s) => !/[\r\n]/.test(s)) }), { maxLength: 8 }),
        fc.constantFrom('\n', '\r\n'),
        fc.array(fc.nat(2000), { maxLength: 20 }),
        (events, eol, cuts) => {
          const text = events.map((e) => `${e.event === undefined ? '' : `event: ${e.event}${eol}`}data: ${e.data}${eol}${eol}`).join('');
          const parser = new SseParser();
          const parsed = [...splitBytes(new TextEncoder().encode(text), cuts).flatMap((c) => parser.push(c)), ...parser.end()];
          expect(parsed.filter((p) => p.hasData).map((p) => ({ event: p.event, data: p.data }))).toEqual(events.map((e) => ({ event: e.event, data: e.data })));
          expect(parsed.map((p) => p.raw).join('')).toBe(text);
        },
      ),
      { numRuns: 200 },
    );
  });
});
