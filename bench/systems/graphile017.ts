import * as mod from 'graphile-worker-0.17';
import { type GraphileModule, graphileSystem } from './graphile-adapter.ts';

/** graphile-worker 0.17.3, the pin of the earlier runs (npm alias `graphile-worker-0.17`). */
export const graphile017 = graphileSystem(
  'graphile017',
  'graphile-worker 0.17.3',
  mod as unknown as GraphileModule,
);
