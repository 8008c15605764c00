/**
 * The local Functions host used by `npm start`: loads the app's compiled functions the way the Azure Functions
 * worker does and serves them over HTTP, timers and storage queues.
 */
export * from './coreShim';
export * from './httpDispatcher';
export * from './invoker';
export * from './localHost';
export * from './ncrontab';
export * from './projectConfig';
export * from './queues';
export * from './registry';
export * from './routes';
export * from './timers';
