// Generates the JSON Schemas of every wire message from the zod schemas the code validates with
// (src/protocol/*.ts) into dist/schemas/. Run by `npm run build`; generated files are not committed.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'schemas');
mkdirSync(out, { recursive: true });

const groups = {
  'worker-protocol': await import('../dist/protocol/worker-messages.js'),
  'task-gateway': await import('../dist/protocol/gateway.js'),
  api: await import('../dist/protocol/task.js'),
};

let count = 0;
for (const [group, module] of Object.entries(groups)) {
  const defs = {};
  for (const [name, value] of Object.entries(module)) {
    if (value instanceof z.ZodType) {
      defs[name] = z.toJSONSchema(value, { unrepresentable: 'any', io: 'input' });
      count++;
    }
  }
  const doc = { $schema: 'https://json-schema.org/draft/2020-12/schema', title: `Airlock ${group} messages`, $defs: defs };
  writeFileSync(join(out, `${group}.json`), JSON.stringify(doc, null, 2) + '\n');
}
process.stderr.write(`gen-schemas: ${count} schemas written to ${out}\n`);
