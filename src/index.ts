export type {
  AdminOptions,
  ChannelStatus,
  HealthOptions,
  ListenerConnection,
  NotificationRow,
  RetrySelector,
  StatusReport,
} from './admin.ts';
export { countFailed, healthProblems, listFailed, purgeFailed, retryFailed, status } from './admin.ts';
export type { Backoff, ExponentialBackoffOptions } from './backoff.ts';
export { DEFAULT_MAX_ATTEMPTS, exponentialBackoff } from './backoff.ts';
export type {
  AnyChannel,
  ChannelOptions,
  CustomChannel,
  TriggerChannel,
  TriggerChannelOptions,
  TriggerOp,
} from './channel.ts';
export { assertChannelName, channel, isChannel, isTriggerChannel, triggerChannel } from './channel.ts';
export type { DashboardHandler, DashboardOptions, DashboardStatus } from './dashboard/index.ts';
export { createDashboard, toNodeHandler } from './dashboard/index.ts';
export type { PgPubSubErrorCode } from './errors.ts';
export { isPgPubSubError, PgPubSubError } from './errors.ts';
export type { BroadcastEvent, EventMeta, ListenerEventMap, PayloadEvent, TriggerEvent } from './events.ts';
export { ListenerEvents } from './events.ts';
export type { DrainSummary, HandlerOf, ListenerOptions, RetryOptions, TxOf } from './listener.ts';
export { createListener, drain, Listener } from './listener.ts';
export type { NotificationStatus } from './notifications.ts';
export {
  DEFAULT_SCHEMA,
  notifications,
  notificationsTable,
  STORAGE_VERSION,
  storageMigrationSql,
} from './notifications.ts';
export type { SqlExecutor } from './notify.ts';
export { MAX_BROADCAST_BYTES, notify, withContext } from './notify.ts';
export type { StandardSchemaV1 } from './standard-schema.ts';
export type { TriggerSpec } from './trigger-sql.ts';
export { createTriggerSql, dropTriggerSql, resolveTriggerSpec } from './trigger-sql.ts';
