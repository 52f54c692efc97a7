/**
 * The public surface of model routing (src/llm): config schema, router, providers, errors in
 * each client API's format, and the translation layer (worker and server may also import the modules directly).
 */
export * from './types.js';
export { ModelsConfig, modelsConfigSchema, parseModelsConfig, resolveApiKey, DEFAULT_API_KEY_ENV, type ProviderConfig } from './config.js';
export { createModelRouter, routeModel, checkRequestBody, type ModelRouter, type ModelRouterOptions, type Route } from './router.js';
export { errorBody, errorResponse, streamErrorEvent, anthropicErrorType } from './errors.js';
export { createProviderFromConfig, type ProviderFactoryOptions } from './providers/index.js';
export { createProvider, DEFAULT_TIMEOUT_MS, KEEP_ALIVE_MS, type ProviderOptions } from './provider.js';
export { upstreamAnswer, type Upstream, type UpstreamAnswer, type UpstreamCall } from './upstream.js';
export { WholeBody, writeAnswer } from './body.js';
export { translateRequest, translateBody, createStreamTranslator, requestToCanonical, canonicalToRequest, bodyToCanonical, canonicalToBody, type StreamTranslator } from './translate/index.js';
export type { CanonicalRequest, CanonicalResponse, CanonicalEvent, CanonicalMessage, CanonicalPart, CanonicalTool, StopReason } from './translate/canonical.js';
export { SseParser, encodeSse, type SseEvent, type ParsedSseEvent } from './sse.js';
