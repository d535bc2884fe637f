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
export type {
  AnyChannel,
  ChannelOptions,
  CustomChannel,
  TriggerChannel,
  TriggerChannelOptions,
  TriggerOp,
} from './channel.ts';
export { assertChannelName, channel, isChannel, isTriggerChannel, triggerChannel } from './channel.ts';
export type { PgPubSubErrorCode } from './errors.ts';
export { isPgPubSubError, PgPubSubError } from './errors.ts';
export type { BroadcastEvent, EventMeta, ListenerEventMap, PayloadEvent, TriggerEvent } from './events.ts';
export { ListenerEvents } from './events.ts';
export type { SqlExecutor } from './notify.ts';
export { MAX_BROADCAST_BYTES, notify, withContext } from './notify.ts';
export type { Backoff, ExponentialBackoffOptions } from './runtime/backoff.ts';
export { DEFAULT_MAX_ATTEMPTS, exponentialBackoff } from './runtime/backoff.ts';
export type { DrainSummary, HandlerOf, ListenerOptions, RetryOptions, TxOf } from './runtime/listener.ts';
export { createListener, drain, Listener } from './runtime/listener.ts';
export type { StandardSchemaV1 } from './standard-schema.ts';
export type { NotificationStatus } from './storage/notifications.ts';
export {
  DEFAULT_SCHEMA,
  notifications,
  notificationsTable,
  STORAGE_VERSION,
  storageMigrationSql,
} from './storage/notifications.ts';
export type { TriggerSpec } from './storage/trigger-sql.ts';
export { createTriggerSql, dropTriggerSql, resolveTriggerSpec } from './storage/trigger-sql.ts';
