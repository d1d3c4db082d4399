// Re-exports for the kit's own tests, including helpers that are not public API.
export * from './index';
export { tcpAsk as tcpAskForTest } from './process';
