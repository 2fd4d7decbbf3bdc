/** The PostgreSQL signal by the path the bridge's wiring imports it from; it lives in postgres/signal.ts. */
export { openPostgresSignal } from './postgres/signal';
export type { StoreSignal } from './store';
