/** Catzilla for Node: the public API (re-exports only). */
export { Catzilla } from './src/app.js'
export type { ServerStats } from './src/app.js'
export { CatzillaRequest } from './src/request.js'
export { StreamingResponse, StreamingWriter } from './src/streaming.js'
export type { Chunk, CloseInfo, StreamContent, StreamingOptions, WriterFunction } from './src/streaming.js'
export { CatzillaError, HTTPError, StreamClosedError } from './src/errors.js'
export type { ErrorCode, HTTPErrorOptions } from './src/errors.js'
export type {
  AppOptions,
  CloseOptions,
  Handler,
  HandlerResult,
  LimitOptions,
  ListenOptions,
  ListenResult,
  Middleware,
  Next,
  TimeoutOptions,
} from './src/types.js'
