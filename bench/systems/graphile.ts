import * as mod from 'graphile-worker';
import { type GraphileModule, graphileSystem } from './graphile-adapter.ts';

/** graphile-worker 0.18 (needs Node ≥ 22.18). */
export const graphile = graphileSystem('graphile', 'graphile-worker 0.18', mod as unknown as GraphileModule);
