// The smoke app loaded with CommonJS `require` (Node's require(esm), on by default since 20.19).
const catzilla = require('catzilla')

import('./run.mjs').then(({ run }) => run(catzilla, `require, node ${process.version}`)).catch((err) => {
  console.error(err)
  process.exit(1)
})
