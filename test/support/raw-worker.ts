/**
 * A hand-driven worker for protocol tests: a real WebSocket to the real server, with the test
 * deciding every message. Lets a test play a worker that misbehaves, dies, or comes back stale.
 */
import WebSocket from 'ws';

export class RawWorker {
  readonly received: any[] = [];
  private waiters: Array<() => void> = [];
  closeCode: number | undefined;
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.received.push(JSON.parse(data.toString()));
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code) => {
        this.closeCode = code;
        for (const w of this.waiters.splice(0)) w();
        resolve(code);
      }),
    );
  }

  static async connect(url: string, key: string): Promise<RawWorker> {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/api/v1/workers/connect', { headers: { authorization: `Bearer ${key}` } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return new RawWorker(ws);
  }

  /** Connect and complete the hello; returns the welcome. */
  static async hello(url: string, key: string, hello: Record<string, unknown> = {}): Promise<{ worker: RawWorker; welcome: any }> {
    const worker = await RawWorker.connect(url, key);
    worker.send({ type: 'hello', protocol: 1, worker_id: 'raw', version: 'test', backend: 'direct', labels: {}, capacity: 1, draining: false, running: [], ...hello });
    const welcome = await worker.next('welcome');
    return { worker, welcome };
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The next message of this type not yet taken (waits up to timeoutMs). */
  async next(type: string, timeoutMs = 10_000, where: (m: any) => boolean = () => true): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.received.findIndex((m) => m.type === type && where(m));
      if (index !== -1) return this.received.splice(index, 1)[0];
      if (this.closeCode !== undefined) throw new Error(`connection closed (${this.closeCode}) while waiting for ${type}; got ${JSON.stringify(this.received)}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no ${type} within ${timeoutMs} ms; got ${JSON.stringify(this.received)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Claim the next offer; returns its execution spec. */
  async claimNext(timeoutMs = 10_000): Promise<any> {
    const offer = await this.next('offer', timeoutMs);
    this.send({ type: 'claim', offer_id: offer.offer_id });
    const claimed = await this.next('claimed', timeoutMs, (m) => m.offer_id === offer.offer_id);
    if (!claimed.ok) throw new Error(`claim refused: ${claimed.reason}`);
    return offer.execution;
  }

  close(): void {
    this.ws.close();
  }

  terminate(): void {
    this.ws.terminate();
  }
}
