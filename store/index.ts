export * from './errors.js';
export * from './schemas.js';
export * from './store.js';
export * from './queries.js';
export { openDatabase, LOOM_APPLICATION_ID, SCHEMA_VERSION, schemaVersion } from './db.js';
export type { Lease } from './owners.js';
export { PROJECTION_TABLES } from './migrations.js';
export * from './permissions.js';
export * from './outbox.js';
