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
export type { NotificationStatus } from './notifications.ts';
export { DEFAULT_SCHEMA, notifications, notificationsTable, storageMigrationSql } from './notifications.ts';
export type { StandardSchemaV1 } from './standard-schema.ts';
export type { TriggerSpec } from './trigger-sql.ts';
export { createTriggerSql, dropTriggerSql, resolveTriggerSpec } from './trigger-sql.ts';
