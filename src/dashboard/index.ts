/** The dashboard: `createDashboard` (Web Request → Response) and the node:http adapter. */
export type { DashboardStatus, FailedDetail, FailedSummary } from './api.ts';
export type { DashboardHandler, DashboardOptions } from './handler.ts';
export { createDashboard } from './handler.ts';
export { toNodeHandler } from './node.ts';
