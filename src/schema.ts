/**
 * `drizzle-pgpubsub/schema`: what schema files need (channel declarations, their types and the
 * error class), with no database driver loaded. Everything here is also exported by `src/index.ts`.
 *
 * @module
 */
export type {
  AnyChannel,
  ChannelOptions,
  CustomChannel,
  OnDeadLetter,
  TriggerChannel,
  TriggerChannelOptions,
  TriggerOp,
} from './channel.ts';
export { assertChannelName, channel, isChannel, isTriggerChannel, triggerChannel } from './channel.ts';
export type { PgPubSubErrorCode } from './errors.ts';
export { isPgPubSubError, PgPubSubError } from './errors.ts';
export type {
  BroadcastEvent,
  EventMeta,
  PayloadEvent,
  ScheduleEvent,
  SnapshotEvent,
  TriggerEvent,
} from './events.ts';
export type { AnySchedule, CatchUp, Schedule, ScheduleOptions } from './schedule.ts';
export { isSchedule, MAX_CATCH_UP, MISFIRE_GRACE_MS, schedule } from './schedule.ts';
export type { StandardSchemaV1 } from './standard-schema.ts';
