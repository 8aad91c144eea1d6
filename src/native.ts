/** The only module that loads the generated napi binding (the prebuilt core for this platform); everything else imports from here. */
import { createRequire } from 'node:module'
import type * as Binding from './binding.cjs'
import type { FileSent, LiveStream, NativeStats, PartInfo, ResponseInfo, ServerOptions, StreamCloseInfo, StreamOptions, WsAccepted } from './binding.cjs'
import { CatzillaError } from './errors.js'

/** Targets with a prebuilt package (`catzilla-<platform>`); mirrors `napi.targets` in package.json, a test keeps them equal. */
export const TARGETS = [
  'x86_64-unknown-linux-gnu',
  'aarch64-unknown-linux-gnu',
  'x86_64-unknown-linux-musl',
  'aarch64-unknown-linux-musl',
  'x86_64-apple-darwin',
  'aarch64-apple-darwin',
  'x86_64-pc-windows-msvc',
] as const

/** `linux-x64-gnu`, `darwin-arm64`, ...: the napi-rs name of the running platform. */
export function platformName(): string {
  const base = `${process.platform}-${process.arch}`
  if (process.platform === 'win32') return `${base}-msvc`
  if (process.platform !== 'linux') return base
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  return `${base}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
}

function load(): typeof Binding {
  try {
    // The generated loader tries a local build (`src/catzilla.<platform>.node`), then the
    // `catzilla-<platform>` package npm installed as an optional dependency.
    return createRequire(import.meta.url)('./binding.cjs') as typeof Binding
  } catch (err) {
    const name = platformName()
    throw new CatzillaError(
      'CZ_NATIVE',
      `Catzilla has no native core for ${name} (Node ${process.version}). Prebuilt packages exist for: ` +
        `${TARGETS.join(', ')}; npm installs the matching catzilla-<platform> package as an optional dependency ` +
        `(check that optional dependencies were not skipped, e.g. by --omit=optional). To build from source: ` +
        `install Rust (https://rustup.rs), clone the Catzilla repository, run \`npm install && npm run build:native\`, ` +
        `then start your app with NAPI_RS_NATIVE_LIBRARY_PATH=<clone>/src/catzilla.${name}.node.`,
      { cause: err },
    )
  }
}

const binding = load()

/** The native server class (one per app). */
export const NativeServer = binding.NativeServer
/** A native server instance. */
export type NativeServer = Binding.NativeServer
/** The native handle of one response stream. */
export const NativeStream = binding.NativeStream
/** A native stream handle. */
export type NativeStream = Binding.NativeStream
const { encodeSse } = binding

/**
 * Encodes a packed batch of SSE events to text with the core's one SSE encoder; throws
 * `CZ_SSE_FIELD: ...` for an invalid field.
 */
export function encodeSsePacked(packed: string): string {
  return encodeSse(packed)
}
export type { FileSent, LiveStream, NativeStats, PartInfo, ResponseInfo, ServerOptions, StreamCloseInfo, StreamOptions, WsAccepted }

/** Event kinds sent by the Rust dispatcher: the generated `EventKind` enum of crates/node/src/types.rs. */
export const Ev = binding.EventKind
/** Event kinds as a type. */
export type Ev = Binding.EventKind

/**
 * Results of `NativeStream.write*` (mirrors `WriteStatus` in crates/core/src/body/ring.rs):
 * `Refused` means nothing was copied because the client's socket is full; the chunk is written
 * again after the drain event.
 */
export const Write = { Ready: 0, Full: 1, Closed: 2, Refused: 3 } as const

/** Results of `NativeServer.reply*`: the generated `ReplyCode` enum of crates/node/src/types.rs. */
export const Reply = binding.ReplyCode

/** Outcomes of `NativeServer.multipartStart`: the generated `PartsStart` enum of crates/node/src/multipart.rs. */
export const PartsStart = binding.PartsStart
/** `multipartStart` outcomes as a type. */
export type PartsStart = Binding.PartsStart
