/**
 * Response bodies of the model routes. A JSON answer or an error is whole in memory: it is
 * iterable like a stream (the `LlmResponse` contract), and the gateways send it in one write with
 * its Content-Length instead of as a chunked stream (one socket write fewer per hop).
 */
import type { ServerResponse } from 'node:http';
import type { LlmResponse } from './types.js';

export class WholeBody implements AsyncIterable<Uint8Array> {
  constructor(readonly bytes: Uint8Array) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.bytes.byteLength > 0) yield this.bytes;
  }
}

/**
 * Write a model answer on a raw HTTP response (the gateways hand it over from their framework):
 * a whole body in one write with its length, a stream chunk by chunk with backpressure — without
 * wrapping it in a stream of its own (bench/gateway.js: this path is every model call's). Never
 * rejects: a body that fails mid-way, or a client that goes away, ends with the connection
 * destroyed, and leaving the loop ends the body's iteration (which ends the provider call).
 */
export async function writeAnswer(res: ServerResponse, answer: LlmResponse): Promise<void> {
  if (answer.body instanceof WholeBody) {
    const { bytes } = answer.body;
    res.writeHead(answer.status, { ...answer.headers, 'content-length': String(bytes.byteLength) });
    res.end(bytes);
    return;
  }
  res.writeHead(answer.status, answer.headers);
  try {
    for await (const chunk of answer.body) {
      if (res.destroyed) break;
      if (!res.write(chunk)) await drained(res);
    }
    res.end();
  } catch {
    res.destroy();
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
