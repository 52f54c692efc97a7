#!/usr/bin/env node
// The one `airlock` binary: loads the compiled CLI (run `npm run build` first).
import { main } from '../dist/cli/main.js';

main(process.argv).catch((err) => {
  process.stderr.write(`airlock: ${err?.message ?? err}\n`);
  process.exit(1);
});
