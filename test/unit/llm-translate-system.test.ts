/**
 * System text wherever a client puts it: Anthropic Messages clients (Claude Code among them) may
 * send `role: "system"` turns inside `messages`; translated for a Chat provider, their text joins
 * the system prompt instead of failing the request.
 */
import { describe, expect, it } from 'vitest';
import { translateRequest } from '../../src/llm/index.js';

describe('system messages among Messages turns', () => {
  it('join the system prompt when translated to Chat Completions', () => {
    const chat = translateRequest('messages', 'chat', {
      model: 'm',
      max_tokens: 100,
      system: [{ type: 'text', text: 'You are a coding agent.' }],
      messages: [
        { role: 'user', content: 'fix it' },
        { role: 'system', content: 'Reminder: stay in the workspace.' },
        { role: 'assistant', content: 'on it' },
      ],
    });
    const messages = chat.messages as Array<{ role: string; content: unknown }>;
    expect(messages[0]).toEqual({ role: 'system', content: 'You are a coding agent.\n\nReminder: stay in the workspace.' });
    expect(messages.slice(1).map((m) => m.role)).toEqual(['user', 'assistant']);
  });

  it('still refuses roles that mean nothing, naming the field', () => {
    expect(() => translateRequest('messages', 'chat', { model: 'm', max_tokens: 1, messages: [{ role: 'tool', content: 'x' }] })).toThrow(
      /messages\[0\]\.role: must be user, assistant or system/,
    );
  });
});
