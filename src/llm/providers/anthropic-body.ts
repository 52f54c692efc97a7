/**
 * The Anthropic Messages body as the cloud platforms take it: the model moves into the URL (or
 * the SDK call), `anthropic_version` names the platform's API version, and `anthropic-beta`
 * client headers become the `anthropic_beta` body field. Also builds Anthropic-format errors as
 * upstream answers, for adapters that fail before (or instead of) an HTTP call.
 */
import { errorBody } from '../errors.js';
import { upstreamAnswer, type UpstreamAnswer } from '../upstream.js';

export function platformBody(body: Record<string, unknown>, version: string, headers: Record<string, string>, options: { keepStream: boolean }): Record<string, unknown> {
  const { model: _model, stream, ...rest } = body;
  const beta = headers['anthropic-beta'];
  return {
    anthropic_version: version,
    ...rest,
    ...(options.keepStream && stream === true ? { stream: true } : {}),
    ...(beta ? { anthropic_beta: beta.split(',').map((b) => b.trim()).filter(Boolean) } : {}),
  };
}

/** An Anthropic-format error as an HTTP response. */
export function anthropicErrorResponse(status: number, message: string): UpstreamAnswer {
  return upstreamAnswer(status, { 'content-type': 'application/json' }, JSON.stringify(errorBody('messages', status, message)));
}
