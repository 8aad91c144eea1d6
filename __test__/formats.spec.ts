/** NDJSON and CSV streams: parsed by real parsers, line by line as they arrive. */
import test from 'ava'
import { parse } from 'csv-parse/sync'
import { csv, ndjson } from '../index.js'
import { deferred, dechunk, parseRaw, rawExchange, serve, within } from './helpers.js'

test('NDJSON lines can be parsed one by one as they arrive', async (t) => {
  const gates = [deferred(), deferred(), deferred()]
  const { app, url } = await serve((app) =>
    app.get('/rows', () =>
      ndjson(
        (async function* () {
          for (let i = 0; i < 3; i++) {
            yield { i, text: `row "${i}"\n` }
            await gates[i]!.promise // the next row is produced only after the client parsed this one
          }
        })(),
      ),
    ),
  )
  t.teardown(() => app.close())
  const res = await fetch(url + '/rows')
  t.is(res.headers.get('content-type'), 'application/x-ndjson')
  const reader = res.body!.getReader()
  let buffer = ''
  const rows: unknown[] = []
  while (rows.length < 3) {
    const { value, done } = await within(reader.read(), 5000, 'an NDJSON line')
    if (done) break
    buffer += Buffer.from(value).toString()
    let nl: number
    while ((nl = buffer.indexOf('\n')) !== -1) {
      rows.push(JSON.parse(buffer.slice(0, nl)))
      buffer = buffer.slice(nl + 1)
      gates[rows.length - 1]!.resolve()
    }
  }
  t.deepEqual(rows, [0, 1, 2].map((i) => ({ i, text: `row "${i}"\n` })))
})

test('a value NDJSON cannot serialise ends the stream as an error', async (t) => {
  const { app, port } = await serve((app) => app.get('/bad', () => ndjson([{ ok: 1 }, { big: 10n }])))
  t.teardown(() => app.close())
  const raw = await rawExchange(port, 'GET /bad HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  const { chunks, terminated } = dechunk(parseRaw(raw).body)
  t.is(Buffer.concat(chunks).toString(), '{"ok":1}\n')
  t.false(terminated)
})

const tricky = [
  { name: 'plain', note: 'simple' },
  { name: 'comma, inside', note: 'has "quotes"' },
  { name: 'multi\nline', note: 'carriage\r\nreturn' },
  { name: '', note: null },
]

test('CSV with commas, quotes and newlines round-trips through a real CSV parser', async (t) => {
  const { app, url } = await serve((app) => app.get('/report.csv', () => csv(tricky, { filename: 'report é.csv' })))
  t.teardown(() => app.close())
  const res = await fetch(url + '/report.csv')
  t.is(res.headers.get('content-type'), 'text/csv; charset=utf-8')
  t.is(res.headers.get('content-disposition'), `attachment; filename="report _.csv"; filename*=UTF-8''report%20%C3%A9.csv`)
  const text = await res.text()
  const records = parse(text, { columns: true }) as Array<Record<string, string>>
  t.deepEqual(records, tricky.map((r) => ({ name: r.name, note: r.note ?? '' })))
})

test('CSV rows as arrays with a header option and another delimiter', async (t) => {
  const { app, url } = await serve((app) =>
    app.get('/a.csv', () =>
      csv(
        (function* () {
          yield [1, 'a;b']
          yield [2, 'c']
        })(),
        { header: ['id', 'value'], delimiter: ';' },
      ),
    ),
  )
  t.teardown(() => app.close())
  const text = await (await fetch(url + '/a.csv')).text()
  t.is(text, 'id;value\r\n1;"a;b"\r\n2;c\r\n')
  t.deepEqual(parse(text, { delimiter: ';' }), [['id', 'value'], ['1', 'a;b'], ['2', 'c']])
})
