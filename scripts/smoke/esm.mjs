// The smoke app loaded with ESM `import`.
import * as catzilla from 'catzilla'
import { run } from './run.mjs'

await run(catzilla, `import, ${process.release.name ?? 'node'} ${process.version} ${process.platform}-${process.arch}`)
