// Bundles the agent runtime (src/agent/main.ts and everything it imports, zod included) into one
// ESM file, dist/agent-runtime/agent.mjs, that runs on a bare Node 20: a container backend mounts
// it read-only, with the worker's Node binary, into any image — no Airlock, no node_modules there.
// Run by `npm run build`; the output is not committed.
//
// Invariant: the file imports nothing but node: builtins. This script checks that (esbuild's own
// record of the output's imports) before writing it, and fails the build naming the offender.
// Not minified: a stack trace from a task environment should point at readable code. Whitespace
// minification would save about a quarter of the size and no measurable start-up time (see
// docs/performance.md), so it is not worth the unreadable traces.
import { builtinModules } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'agent-runtime', 'agent.mjs');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

const result = await build({
  entryPoints: [join(root, 'src', 'agent', 'main.ts')],
  outfile,
  write: false,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // The output is self-contained: nothing may be left for node_modules to provide at run time.
  packages: 'bundle',
  sourcemap: false,
  metafile: true,
  logLevel: 'warning',
  banner: {
    js: `// Airlock ${version} agent runtime: src/agent/main.ts bundled by scripts/bundle-agent.js (generated — do not edit).\n// Usage: <node> agent.mjs run | <node> agent.mjs git-credential [action]`,
  },
});

const builtins = new Set(builtinModules);
const [output] = Object.values(result.metafile.outputs); // one entry, no splitting: one output
const foreign = output.imports.filter((i) => !i.path.startsWith('node:') && !builtins.has(i.path));
if (foreign.length > 0) {
  process.stderr.write(
    `bundle-agent: ${relative(root, outfile)} would import ${[...new Set(foreign.map((i) => `${i.path} (${i.kind})`))].join(', ')} at run time, ` +
      'which a task environment does not have — it must be inlined: import it with a static specifier, and do not mark it external\n',
  );
  process.exit(1);
}
mkdirSync(dirname(outfile), { recursive: true });
writeFileSync(outfile, result.outputFiles[0].contents);
const modules = Object.keys(output.inputs).length;
process.stderr.write(`bundle-agent: ${relative(root, outfile)} written, ${(output.bytes / 1024).toFixed(0)} KiB (${output.bytes} bytes) from ${modules} modules\n`);
