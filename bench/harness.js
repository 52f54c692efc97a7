// The built-in harness's own cost per turn, model time excluded: 200 turns (each one model call
// and one read_file tool call) against the scripted model server with no delay, minus the time
// of the very same 200 request bodies sent straight to the same kind of server over plain HTTP
// (the floor: what the model calls cost by themselves). Goal: < 5 ms per turn. The two runs are
// interleaved over several rounds and the fastest of each kept, since a busy machine's noise is
// larger than the difference. Also shown: the run's time outside its model calls (the loop, the
// tool, the events), measured inside the run, which noise barely touches.
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtinHarness } from '../dist/agent/harness/builtin/builtin.js';
import { AsyncQueue } from '../dist/agent/control.js';
import { parseGatewayAddress } from '../dist/agent/report/client.js';
import { startScriptedModelServer } from '../dist/dev/model-server.js';
import { newId } from '../dist/lib/ids.js';
import { ms, report } from './lib.js';

const TURNS = Number(process.env.BENCH_HARNESS_TURNS ?? 200);
const ROUNDS = Number(process.env.BENCH_HARNESS_ROUNDS ?? 5);

/** Tool calls until the last turn, which answers with text; usage is fixed so budgets never interfere. */
function script(request) {
  const toolResults = request.body.messages.filter((m) => m.role === 'tool').length;
  if (toolResults >= TURNS - 1) return { text: 'done', usage: { input: 10, output: 1 } };
  return { toolCalls: [{ name: 'read_file', arguments: { path: 'small.txt' } }], usage: { input: 10, output: 1 } };
}

async function harnessRun(workdir) {
  const server = await startScriptedModelServer({ script });
  const queue = new AsyncQueue();
  let events = 0;
  let modelMs = 0;
  const context = {
    spec: { execution_id: newId('exe'), task_id: newId('tsk'), epoch: 1, prompt: 'Read small.txt many times.', harness: 'builtin', timeout_seconds: null, title: null, budget: { max_turns: TURNS + 1 } },
    workdir,
    env: { PATH: process.env.PATH },
    emit: (_kind, data) => {
      events++;
      if (data.type === 'model_call') modelMs += data.ms;
    },
    signal: new AbortController().signal,
    messages: () => queue,
    gateway: { address: parseGatewayAddress(server.url), token: 'bench' },
  };
  const started = performance.now();
  const result = await builtinHarness().run(context);
  const elapsed = performance.now() - started;
  queue.end();
  const bodies = server.requests.map((r) => JSON.stringify(r.body));
  await server.close();
  if (result.stopReason !== 'completed' || bodies.length !== TURNS) throw new Error(`unexpected run: ${JSON.stringify(result)} after ${bodies.length} requests`);
  return { elapsed, bodies, events, outsideModelMs: elapsed - modelMs };
}

/** The floor: the same bodies, one after the other, each stream read to its end, nothing parsed. */
async function rawRun(bodies) {
  const server = await startScriptedModelServer({ script });
  const url = new URL(server.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const started = performance.now();
  for (const body of bodies) {
    await new Promise((resolve, reject) => {
      const req = http.request(
        { host: url.hostname, port: url.port, path: '/v1/chat/completions', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: 'Bearer bench' } },
        (res) => {
          res.on('data', () => undefined);
          res.on('end', resolve);
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }
  const elapsed = performance.now() - started;
  agent.destroy();
  await server.close();
  return elapsed;
}

export async function run() {
  const workdir = mkdtempSync(join(tmpdir(), 'al-bench-harness-'));
  writeFileSync(join(workdir, 'small.txt'), 'a small file\nwith two lines\n');
  try {
    await harnessRun(workdir); // warm-up: JIT, sockets
    const harnessTimes = [];
    const rawTimes = [];
    const outside = [];
    let events = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const harness = await harnessRun(workdir);
      harnessTimes.push(harness.elapsed);
      outside.push(harness.outsideModelMs / TURNS);
      events = harness.events;
      rawTimes.push(await rawRun(harness.bodies));
    }
    const best = (values) => Math.min(...values);
    const perTurn = (best(harnessTimes) - best(rawTimes)) / TURNS;
    const outsidePerTurn = best(outside);
    process.stdout.write(`built-in harness overhead (${TURNS} turns of one model call + one read_file, scripted model server, no delay; best of ${ROUNDS} interleaved rounds)\n`);
    report([
      ['harness run', ms(best(harnessTimes)), `${TURNS} turns, ${events} transcript events; rounds ${harnessTimes.map((v) => v.toFixed(0)).join(', ')} ms`],
      ['same requests, raw', ms(best(rawTimes)), `floor: the model calls alone; rounds ${rawTimes.map((v) => v.toFixed(0)).join(', ')} ms`],
      ['overhead per turn', ms(perTurn), 'goal < 5 ms (harness − floor) / turns'],
      ['outside model calls per turn', ms(outsidePerTurn), 'loop + read_file + events, timed inside the run'],
    ]);
    return { turns: TURNS, harness_ms: best(harnessTimes), raw_ms: best(rawTimes), overhead_per_turn_ms: perTurn, outside_model_per_turn_ms: outsidePerTurn };
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
