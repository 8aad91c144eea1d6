// The broadcast payloads every JS peer sends (the Python peer has its own copy): plain padded text, and JSON rows for the permessage-deflate rows.
/** `${i} ` padded with `x` to `size` bytes. */
export const message = (i, size) => `${i} `.padEnd(size, 'x')
/** `${i} ` and JSON rows with varied numbers, padded with spaces to `size` bytes: compresses like real JSON. */
export const jsonMessage = (i, size) => {
  let s = `${i} {"seq":${i},"rows":[`
  for (let k = 0; ; k++) {
    const h = (i * 7919 + k * 104729) % 1000003
    const row = `${k ? ',' : ''}{"id":${i * 64 + k},"sku":"SKU-${h}","price":${h % 100000},"qty":${h % 97},"active":${h % 2 === 0}}`
    if (s.length + row.length + 2 > size) break
    s += row
  }
  return `${s}]}`.padEnd(size).slice(0, size)
}
