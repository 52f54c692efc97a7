import { expect } from 'vitest';

/**
 * Raw HTTP for API tests: real fetch, no client library between the test and the wire, so the
 * tests see exactly what a third-party client would (status, headers, bytes).
 */
export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body (undefined if not JSON): loosely typed, tests assert its shape. */
   
  json: any;
}

export interface RawRequest {
  method?: string;
  key?: string;
  body?: unknown;
  /** Sent as is (no JSON encoding, no default content type). */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
}

export async function http(baseUrl: string, path: string, request: RawRequest = {}): Promise<RawResponse> {
  const headers: Record<string, string> = { ...request.headers };
  if (request.key !== undefined) headers.authorization = `Bearer ${request.key}`;
  let body: string | Buffer | undefined;
  if (request.rawBody !== undefined) body = request.rawBody;
  else if (request.body !== undefined) {
    body = JSON.stringify(request.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${baseUrl}${path}`, { method: request.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** Assert an API error: its status, its stable code and (optionally) what its message mentions. */
export function expectError(res: RawResponse, status: number, code: string, mentions?: RegExp): void {
  expect(res.status, res.text).toBe(status);
  expect(res.json.error.code).toBe(code);
  if (mentions) expect(res.json.error.message).toMatch(mentions);
}
