/**
 * The server's Prometheus metrics, one typed object so names are defined once. A registry per
 * server instance (tests run several servers in one process).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { TASK_STATES } from '../protocol/lifecycle.js';

export interface ServerMetrics {
  registry: Registry;
  queueDepth: Gauge;
  tasksByState: Gauge<'state'>;
  connectedWorkers: Gauge;
  /** Seconds from task creation to the worker's claim (the queue wait plus the offer round trip). */
  dispatchLatency: Histogram;
  eventsIngested: Counter;
  tasksFinished: Counter<'outcome' | 'reason'>;
  wsProtocolErrors: Counter<'code'>;
}

export function createServerMetrics(): ServerMetrics {
  const registry = new Registry();
  const metrics: ServerMetrics = {
    registry,
    queueDepth: new Gauge({ name: 'airlock_queue_depth', help: 'Tasks waiting in the queue', registers: [registry] }),
    tasksByState: new Gauge({ name: 'airlock_tasks', help: 'Tasks by state', labelNames: ['state'], registers: [registry] }),
    connectedWorkers: new Gauge({ name: 'airlock_connected_workers', help: 'Workers connected to this server', registers: [registry] }),
    dispatchLatency: new Histogram({
      name: 'airlock_dispatch_latency_seconds',
      help: 'Time from task creation to claim by a worker',
      // From a millisecond (idle worker on loopback) to minutes (a deep queue).
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    eventsIngested: new Counter({ name: 'airlock_events_ingested_total', help: 'Transcript events stored (duplicates excluded)', registers: [registry] }),
    tasksFinished: new Counter({
      name: 'airlock_tasks_finished_total',
      help: 'Tasks that reached a terminal state',
      labelNames: ['outcome', 'reason'],
      registers: [registry],
    }),
    wsProtocolErrors: new Counter({
      name: 'airlock_worker_protocol_errors_total',
      help: 'Worker connections closed for a protocol violation',
      labelNames: ['code'],
      registers: [registry],
    }),
  };
  for (const state of TASK_STATES) metrics.tasksByState.set({ state }, 0);
  return metrics;
}
