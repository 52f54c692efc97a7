/**
 * Amazon Bedrock through the AWS SDK (`@aws-sdk/client-bedrock-runtime`, SigV4): Anthropic models
 * with InvokeModel / InvokeModelWithResponseStream and the Anthropic Messages body, so Messages
 * clients pass through and the others are translated. The SDK's binary event stream is turned
 * back into Anthropic SSE (each chunk's bytes are one Messages stream event), and SDK failures
 * into Anthropic error responses or a mid-stream `error` event.
 * Invariants: credentials come from the AWS_* variables of the given environment or else the
 * SDK's default chain (profile, SSO, instance role), never from the config file; the SDK does not
 * retry (maxAttempts 1) — the client's own SDK sees the 429/5xx and retries as it sees fit.
 */
import { BedrockRuntimeClient, InvokeModelCommand, InvokeModelWithResponseStreamCommand, type ResponseStream } from '@aws-sdk/client-bedrock-runtime';
import type { ProviderConfig } from '../config.js';
import { anthropicErrorType } from '../errors.js';
import { encodeSse, utf8 } from '../sse.js';
import { upstreamAnswer, type Upstream, type UpstreamAnswer, type UpstreamCall } from '../upstream.js';
import { anthropicErrorResponse, platformBody } from './anthropic-body.js';

/** The Messages API version Bedrock's Anthropic models take in the body. */
export const BEDROCK_ANTHROPIC_VERSION = 'bedrock-2023-05-31';

type BedrockConfig = Extract<ProviderConfig, { type: 'bedrock' }>;

function credentialsFrom(env: NodeJS.ProcessEnv): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) return undefined;
  return { accessKeyId, secretAccessKey, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
}

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

function sdkFailure(error: unknown): UpstreamAnswer {
  const e = error as SdkError;
  const status = e.$metadata?.httpStatusCode ?? (e.name === 'ThrottlingException' ? 429 : 502);
  return anthropicErrorResponse(status, `Bedrock: ${e.name ?? 'error'}: ${e.message ?? 'request failed'}`);
}

/** The error member of a stream event, if it is one. */
function streamError(event: ResponseStream): string | undefined {
  for (const [name, value] of Object.entries(event)) {
    if (name === 'chunk' || value === undefined) continue;
    const message = (value as { message?: string }).message;
    return `Bedrock: ${name}${message ? `: ${message}` : ''}`;
  }
  return undefined;
}

async function* sseFromEvents(events: AsyncIterable<ResponseStream>): AsyncGenerator<Uint8Array> {
  const decoder = new TextDecoder();
  const errorEvent = (message: string, status = 500): Uint8Array =>
    utf8(encodeSse({ event: 'error', data: JSON.stringify({ type: 'error', error: { type: anthropicErrorType(status), message } }) }));
  try {
    // Leaving this loop (the client stopped reading) ends the SDK's stream too.
    for await (const event of events) {
      const failure = streamError(event);
      if (failure !== undefined) {
        yield errorEvent(failure);
        return;
      }
      const bytes = event.chunk?.bytes;
      if (!bytes) continue;
      const data = decoder.decode(bytes);
      const type = (JSON.parse(data) as { type?: unknown }).type;
      yield utf8(encodeSse({ event: typeof type === 'string' ? type : 'message', data }));
    }
  } catch (error) {
    const e = error as SdkError;
    if (e.name === 'AbortError') throw error;
    yield errorEvent(`Bedrock: ${e.name ?? 'error'}: ${e.message ?? 'the stream failed'}`, e.$metadata?.httpStatusCode ?? 500);
  }
}

export function bedrockUpstream(config: BedrockConfig, env: NodeJS.ProcessEnv): Upstream {
  const credentials = credentialsFrom(env);
  const client = new BedrockRuntimeClient({
    region: config.region,
    maxAttempts: 1,
    ...(config.base_url ? { endpoint: config.base_url } : {}),
    ...(credentials ? { credentials } : {}),
  });
  const send = async (call: UpstreamCall): Promise<UpstreamAnswer> => {
    const modelId = String(call.body.model);
    const body = JSON.stringify(platformBody(call.body, BEDROCK_ANTHROPIC_VERSION, call.headers, { keepStream: false }));
    const input = { modelId, body: utf8(body), contentType: 'application/json', accept: 'application/json' };
    try {
      if (call.body.stream === true) {
        const output = await client.send(new InvokeModelWithResponseStreamCommand(input), { abortSignal: call.signal });
        if (!output.body) return anthropicErrorResponse(502, 'Bedrock answered a stream request without a stream');
        return upstreamAnswer(200, { 'content-type': 'text/event-stream' }, sseFromEvents(output.body));
      }
      const output = await client.send(new InvokeModelCommand(input), { abortSignal: call.signal });
      return upstreamAnswer(200, { 'content-type': 'application/json' }, output.body);
    } catch (error) {
      if (call.signal.aborted) throw error;
      return sdkFailure(error);
    }
  };
  return { apis: ['messages'], target: config.base_url ?? `bedrock-runtime.${config.region}.amazonaws.com`, send };
}
