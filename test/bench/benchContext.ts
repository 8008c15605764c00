/** What every benchmark gets: a local cloud and the gateway config pointing at it. */
import type { GatewayConfig } from '../../shared/config';
import type { LocalCloud } from '../emulators/localCloud';

/** Shared state of one benchmark run. */
export interface BenchContext {
  cloud: LocalCloud;
  config: GatewayConfig;
}
