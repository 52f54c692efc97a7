/**
 * Response bodies of the model routes. A JSON answer or an error is whole in memory: it is
 * iterable like a stream (the `LlmResponse` contract), and the gateways send it in one write with
 * its Content-Length instead of as a chunked stream (one socket write fewer per hop).
 */
import { Readable } from 'node:stream';

export class WholeBody implements AsyncIterable<Uint8Array> {
  constructor(readonly bytes: Uint8Array) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.bytes.byteLength > 0) yield this.bytes;
  }
}

/** What a gateway hands its HTTP framework: a whole body's bytes, or a stream to pipe. */
export function replyBody(body: AsyncIterable<Uint8Array>): Buffer | Readable {
  if (body instanceof WholeBody) return Buffer.from(body.bytes.buffer, body.bytes.byteOffset, body.bytes.byteLength);
  return Readable.from(body, { objectMode: false });
}
