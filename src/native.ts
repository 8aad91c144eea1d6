/** The only module that loads the generated napi binding; everything else imports from here. */
import { encodeSse, NativeServer, NativeStream } from './binding.js'
import type { NativeStats, ServerOptions, StreamCloseInfo } from './binding.js'

export { NativeServer, NativeStream }

/**
 * Encodes a packed batch of SSE events to text with the core's one SSE encoder; throws
 * `CZ_SSE_FIELD: ...` for an invalid field.
 */
export function encodeSsePacked(packed: string): string {
  return encodeSse(packed)
}
export type { NativeStats, ServerOptions, StreamCloseInfo }

/** Event kinds sent by the Rust dispatcher (mirrors `EventKind` in crates/node/src/types.rs). */
export const Ev = {
  Request: 0,
  Cancel: 1,
  Drain: 2,
  Closed: 3,
  Body: 4,
  BodyEnd: 5,
  BodyError: 6,
  WsOpen: 7,
  WsMessage: 8,
  WsDrain: 9,
  WsClose: 10,
  PartStart: 11,
  PartsEnd: 12,
} as const

/** Results of `NativeStream.write*` (mirrors `WriteStatus` in crates/core/src/body/ring.rs). */
export const Write = { Ready: 0, Full: 1, Closed: 2 } as const

/** Results of `NativeServer.reply*` (mirrors `ReplyCode` in crates/node/src/types.rs). */
export const Reply = { Ok: 0, Gone: 1, BadHeader: 2 } as const
