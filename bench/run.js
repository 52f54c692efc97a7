// `npm run bench`: every benchmark, one after the other (they share two cores: never in
// parallel), each figure next to its floor or ceiling from the same run. Results also go to
// bench/results/latest.json (not committed) for docs/performance.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

const only = process.argv.slice(2);
const suites = ['task-start', 'dispatch', 'events', 'harness', 'gateway', 'docker'].filter((s) => only.length === 0 || only.includes(s));
const results = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, memory_gib: Math.round(totalmem() / 2 ** 30), node: process.version },
};
process.stdout.write(`Airlock benchmarks — ${results.machine.cpus} × ${results.machine.model}, ${results.machine.memory_gib} GiB, Node ${process.version}\n\n`);
for (const suite of suites) {
  const { run } = await import(`./${suite}.js`);
  results[suite] = await run();
  process.stdout.write('\n');
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/latest.json', import.meta.url), JSON.stringify(results, null, 2) + '\n');
