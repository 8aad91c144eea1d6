/** The JS end of the Rust dispatcher: one function that routes each native event to its request, stream or WebSocket. */
import { HTTPError } from './errors.js'
import { Ev } from './native.js'
import type { CatzillaRequest } from './request.js'
import type { StreamSink } from './streaming.js'
import type { WebSocket } from './websocket.js'

/** What the dispatcher needs from the app: its live tables and two callbacks. @internal */
export interface DispatchTarget {
  /** Requests not yet answered (or whose stream is open), by native id. */
  readonly requests: Map<number, CatzillaRequest>
  /** Open response streams, by request id. */
  readonly sinks: Map<number, StreamSink>
  /** Open WebSockets, by socket id. */
  readonly sockets: Map<number, WebSocket<unknown>>
  /** Closed WebSockets whose session waits for a resume (routes with `resume`), by socket id. */
  readonly offline: Map<number, WebSocket<unknown>>
  /** A routed request arrived. */
  onRequest(id: number, routeId: number, head: string, body: Buffer | undefined): void
  /** Runs a WebSocket hook (a throw closes the socket with 1011); returns the promise of an async one. */
  hook(ws: WebSocket<unknown>, name: string, fn: () => unknown): PromiseLike<unknown> | undefined
}

/**
 * The function handed to `NativeServer.setDispatcher`: `(kind, id, num, text?, data?)` per event.
 * It returns `true` only for a WebSocket message whose handling was deferred (an async `message`
 * hook is still running): Rust then counts the message as unconsumed until `wsConsumed`. @internal
 */
export function dispatcher(t: DispatchTarget) {
  return (kind: number, id: number, num: number, text?: string | null, data?: Buffer | null): true | undefined => {
    route(t, kind, id, num, text, data)
    if (kind !== Ev.WsMessage) return undefined
    const ws = t.sockets.get(id)
    if (ws?._behaviour.message === undefined) return undefined
    const payload = num === 1 ? data! : text!
    return ws._inbound(() => t.hook(ws, 'message', () => ws._behaviour.message!(ws, payload, num === 1)))
  }
}

/** Every event but a WebSocket message. */
function route(t: DispatchTarget, kind: number, id: number, num: number, text?: string | null, data?: Buffer | null): void {
  switch (kind) {
    case Ev.Request:
      return t.onRequest(id, num, text!, data ?? undefined)
    case Ev.Drain:
      return t.sinks.get(id)?._drained()
    case Ev.Closed: {
      const aborted = num === 1
      const sink = t.sinks.get(id)
      t.sinks.delete(id)
      const req = t.requests.get(id)
      t.requests.delete(id)
      if (aborted) req?._abort()
      return sink?._closed(aborted)
    }
    case Ev.Cancel: {
      const req = t.requests.get(id)
      t.requests.delete(id)
      req?._abort()
      return req?._finished(0, 0, true)
    }
    case Ev.Body:
      return t.requests.get(id)?._bodyEvent(data ?? undefined)
    case Ev.BodyEnd:
      return t.requests.get(id)?._bodyEvent(undefined)
    case Ev.BodyError: {
      const req = t.requests.get(id)
      return req?._bodyEvent(undefined, new HTTPError(num, text ?? 'Bad Request'))
    }
    case Ev.PartStart:
      return t.requests.get(id)?._parts?._partStart()
    case Ev.PartsEnd:
      return t.requests.get(id)?._parts?._event(null)
    case Ev.WsOpen: {
      const ws = t.sockets.get(id)
      if (ws?._behaviour.open === undefined) return
      void t.hook(ws, 'open', () => ws._behaviour.open!(ws))
      return
    }
    case Ev.WsDrain: {
      const ws = t.sockets.get(id)
      if (ws?._behaviour.drain === undefined) return
      void t.hook(ws, 'drain', () => ws._behaviour.drain!(ws))
      return
    }
    case Ev.WsClose:
    case Ev.WsOffline: {
      const ws = t.sockets.get(id)
      t.sockets.delete(id)
      if (ws === undefined) return
      ws._markClosed()
      if (kind === Ev.WsOffline) t.offline.set(id, ws)
      if (ws._behaviour.close !== undefined) void t.hook(ws, 'close', () => ws._behaviour.close!(ws, num, text ?? ''))
      return
    }
    case Ev.WsExpired: {
      const ws = t.offline.get(id)
      t.offline.delete(id)
      if (ws?._behaviour.expired !== undefined) void t.hook(ws, 'expired', () => ws._behaviour.expired!(ws))
      return
    }
    case Ev.WsMoved:
      // Resumed on another connection through Redis (maybe another process): no `expired`.
      t.offline.delete(id)
  }
}
