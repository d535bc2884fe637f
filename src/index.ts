/**
 * `drizzle-pgpubsub`: the full API. The declarations (channels, event types, errors) come from
 * `./schema.ts`, the driver-free entry, and are re-exported here unchanged.
 *
 * @module
 */

export type {
  AdminOptions,
  ChannelStatus,
  HealthOptions,
  ListenerConnection,
  NotificationRow,
  RetrySelector,
  ScheduleStatus,
  StatusReport,
} from './admin.ts';
export { healthProblems, status } from './admin.ts';
export type { BackfillOptions, BackfillProgress, BackfillResult } from './backfill.ts';
export { backfill } from './backfill.ts';
export type { DashboardHandler, DashboardOptions, DashboardStatus } from './dashboard/index.ts';
export { createDashboard, toNodeHandler } from './dashboard/index.ts';
export { countFailed, listFailed, purgeFailed, retryFailed } from './dead-letters.ts';
export type { ListenerEventMap } from './events.ts';
export { ListenerEvents } from './events.ts';
export type {
  BroadcastResult,
  BulkNotifyOptions,
  BulkNotifyResult,
  NotifyOptions,
  NotifyOutcome,
  NotifyResult,
  SqlExecutor,
} from './notify.ts';
export { MAX_BROADCAST_BYTES, notify, withContext, withoutWakeup, withTraceContext } from './notify.ts';
export type { Backoff, ExponentialBackoffOptions } from './runtime/backoff.ts';
export { DEFAULT_MAX_ATTEMPTS, exponentialBackoff } from './runtime/backoff.ts';
export type { DrizzleSettings } from './runtime/drizzle-adapter.ts';
export type { DrainSummary, HandlerOf, ListenerOptions, RetryOptions, TxOf } from './runtime/listener.ts';
export { createListener, drain, Listener } from './runtime/listener.ts';
export type {
  BatchHandlerOf,
  BatchHandlerOptions,
  BatchResult,
  Duration,
  EventOf,
  HandlerOptions,
  LeaseFields,
  LeaseHandlerOf,
  LeaseHandlerOptions,
  Rate,
} from './runtime/listener-options.ts';
export * from './schema.ts';
export type { NotificationStatus } from './storage/notifications.ts';
export {
  backfillsTable,
  DEFAULT_SCHEMA,
  notifications,
  notificationsTable,
  STORAGE_VERSION,
  storageMigrationSql,
} from './storage/notifications.ts';
export { schedulesTable } from './storage/schedules.ts';
export type { TriggerSpec } from './storage/trigger-sql.ts';
export {
  createTriggerSql,
  dropTriggerSql,
  orderingKeySql,
  resolveTriggerSpec,
} from './storage/trigger-sql.ts';
export type { MetricsOptions, TracingOptions } from './telemetry/listener-telemetry.ts';
export type { ListenerLogger, LogMethod } from './telemetry/logger.ts';
export type { OtelMeter } from './telemetry/otel-api.ts';
export type { TraceContextFields } from './telemetry/trace-context.ts';
