/**
 * `airlock worker list`: the team's workers as the server knows them (connected or not), through
 * the API client. Attached under `airlock worker` by worker.ts.
 */
import { Command } from 'commander';
import { addConnectionOptions, clientFor, type ConnectionFlags } from './client.js';
import { formatAge, formatTable, note, printJson, printLine } from './output.js';

export function workerListCommand(): Command {
  return addConnectionOptions(new Command('list').description("List the team's workers").option('--json', 'print JSON')).action(
    async (_options: unknown, command: Command) => {
      // `airlock worker` has --server/--api-key of its own (for the daemon), and commander hands
      // them to the parent even when written after `list`: read both levels.
      const options = command.optsWithGlobals<ConnectionFlags & { json?: boolean }>();
      const client = await clientFor(options);
      const workers = await client.listWorkers();
      if (options.json) {
        printJson({ workers });
        return;
      }
      if (workers.length === 0) {
        note('no workers have connected yet — start one with: airlock worker --server URL (with a worker key in AIRLOCK_API_KEY)');
        return;
      }
      const now = Date.now();
      printLine(
        formatTable(
          ['WORKER', 'STATUS', 'BACKEND', 'VERSION', 'CAPACITY', 'LAST SEEN', 'LABELS'],
          workers.map((w) => [
            w.worker_id,
            !w.connected ? 'disconnected' : w.draining ? 'draining' : 'connected',
            w.backend,
            w.version,
            String(w.capacity),
            formatAge(w.last_seen_at, now),
            Object.entries(w.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(',') || '-',
          ]),
        ),
      );
    },
  );
}
