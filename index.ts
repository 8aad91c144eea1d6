/** Catzilla for Node: the public API (re-exports only). */
export { Catzilla } from './src/app.js'
export { serve } from './src/serve.js'
export type { AppSetup, Served, ServeOptions, WorkerInfo } from './src/serve.js'
export type { ErrorHook, ServerStats } from './src/app.js'
export { CatzillaRequest } from './src/request.js'
export type { CookieOptions, FinishInfo } from './src/request.js'
export type { DashboardAuth, DashboardOptions } from './src/dashboard.js'
export type { LiveStream, MetricsAuth, MetricsOptions, ResponseHook, ResponseInfo } from './src/observe.js'
export { sse, encodeSSE } from './src/sse.js'
export { json, text, BodyResponse } from './src/body.js'
export type { BodyInit } from './src/body.js'
export type { SSEEvent, SSEOptions, SSESource } from './src/sse.js'
export { Part } from './src/multipart.js'
export { file, FileResponse } from './src/file.js'
export type { FileOptions } from './src/file.js'
export { SSETopic } from './src/topic.js'
export type { SSETopicOptions } from './src/topic.js'
export { WebSocket } from './src/websocket.js'
export type { SendResult, WebSocketBehaviour, WebSocketCompression, WebSocketData, WebSocketResume } from './src/websocket.js'
export { ndjson } from './src/ndjson.js'
export { csv } from './src/csv.js'
export type { CSVOptions } from './src/csv.js'
export { StreamingResponse, StreamingWriter } from './src/streaming.js'
export type { Chunk, CloseInfo, StreamContent, StreamingOptions, WriterFunction } from './src/streaming.js'
export { CatzillaError, HTTPError, StreamClosedError, errorStatus } from './src/errors.js'
export type { ErrorCode, HTTPErrorOptions } from './src/errors.js'
export type {
  AppOptions,
  CloseOptions,
  CompressionOptions,
  ContentCoding,
  Handler,
  HandlerResult,
  LimitOptions,
  ListenOptions,
  ListenResult,
  Middleware,
  RouteOptions,
  Next,
  ParamNames,
  Params,
  RouteParams,
  RedisOptions,
  StaticOptions,
  TimeoutOptions,
} from './src/types.js'
