'use strict'
// Every method of the Node.js API against oracles: brute-force nearest neighbours computed
// here, a filter evaluator, the folder's bytes, a second process.

const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const { cv, data, row, bruteForce, assertExact, tempDir, folderBytes, make, rejection } = require('./support/helpers.js')

const METRICS = ['euclidean', 'squared_euclidean', 'cosine', 'inner_product']

for (const metric of METRICS) {
  test(`${metric}: exact before training, exact again after it when every list is probed`, async () => {
    const { index, base, dim } = await make({ metric })
    assert.equal(index.isTrained(), false)
    for (let qi = 0; qi < 500; qi += 50) {
      const q = row(base, dim, qi)
      assertExact(await index.query(q, { topK: 5 }), bruteForce(base, dim, q, 5, metric))
    }
    await index.train()
    assert.equal(index.isTrained(), true)
    for (let qi = 0; qi < 500; qi += 50) {
      const q = row(base, dim, qi)
      assertExact(await index.query(q, { topK: 5, nProbes: 10_000 }), bruteForce(base, dim, q, 5, metric))
    }
  })
}

for (const indexType of ['ivf_flat', 'ivf_sq8', 'ivf_pq']) {
  test(`${indexType}: lifecycle (accessors, listIds, train, delete, get, verify, compact)`, async () => {
    const { index, base, dim } = await make({ indexType })
    assert.equal(index.name, 'docs')
    assert.equal(index.dimension, dim)
    assert.equal(index.size, 500)
    assert.equal(index.indexType, indexType)
    assert.equal(index.metric, 'euclidean')
    assert.equal(index.fullText, false)
    assert.deepEqual(
      await index.listIds(),
      Array.from({ length: 500 }, (_, i) => String(i)).sort(),
    )
    await index.train({ nLists: 8, maxIters: 5 })
    assert.equal(index.isTrained(), true)
    assert.equal(index.nLists, 8)
    assert.equal(await index.delete(['3', '4', 'nope']), 2)
    assert.equal(index.size, 498)
    assert.deepEqual(await index.get(['3']), [])
    // The re-ranked answers of every type are exact when every list is probed and the
    // re-rank window holds everything.
    const q = row(base, dim, 10)
    const keep = (i) => i !== 3 && i !== 4
    assertExact(
      await index.query(q, { topK: 5, nProbes: 8, rerank: 100 }),
      bruteForce(base, dim, q, 5, 'euclidean', keep),
    )
    const report = await index.verify()
    assert.ok(report.segments >= 1 && report.records > 0 && report.bytes > 0)
    await index.compact()
    assertExact(
      await index.query(q, { topK: 5, nProbes: 8, rerank: 100 }),
      bruteForce(base, dim, q, 5, 'euclidean', keep),
    )
  })
}

test('the three ways to give vectors, and the two ways to batch queries, agree', async () => {
  const dim = 8
  const base = data(50, dim, 3)
  const ids = Array.from({ length: 50 }, (_, i) => String(i))
  const key = cv.generateKey()
  const client = new cv.Client()
  const byRows = await client.createIndex('rows', key, { dimension: dim })
  await byRows.upsert(ids, base)
  const byTyped = await client.createIndex('typed', key, { dimension: dim })
  await byTyped.upsert(ids.map((id, i) => ({ id, vector: row(base, dim, i) })))
  const byNumbers = await client.createIndex('numbers', key, { dimension: dim })
  await byNumbers.upsert(ids.map((id, i) => ({ id, vector: Array.from(row(base, dim, i)) })))
  const queries = data(20, dim, 4)
  const flat = await byRows.queryBatch(queries, { topK: 4 })
  const listed = await byTyped.queryBatch(
    Array.from({ length: 20 }, (_, i) => Array.from(row(queries, dim, i))),
    { topK: 4 },
  )
  assert.equal(flat.length, 20)
  for (let i = 0; i < 20; i++) {
    const q = row(queries, dim, i)
    const one = await byNumbers.query(q, { topK: 4 })
    assertExact(one, bruteForce(base, dim, q, 4))
    assert.deepEqual(flat[i], one)
    assert.deepEqual(listed[i], one)
  }
  // The stored vectors are the ones given, as Float32Array.
  const [stored] = await byNumbers.get(['7'], { include: ['vector'] })
  assert.ok(stored.vector instanceof Float32Array)
  assert.deepEqual(stored.vector, row(base, dim, 7))
})

test('contents and metadata round-trip; include picks the fields; JSON is what JSON.stringify writes', async () => {
  const index = await new cv.Client().createIndex('docs', cv.generateKey(), { dimension: 2 })
  const when = new Date(Date.UTC(2024, 0, 2))
  await index.upsert([
    { id: 'text', vector: [1, 0], contents: 'héllo wörld', metadata: { tag: 'a', n: 1, nested: { x: [1, 2] } } },
    { id: 'bytes', vector: [0, 1], contents: Buffer.from([0, 255, 1]), metadata: { when, gone: undefined } },
    { id: 'uint8', vector: [1, 1], contents: new Uint8Array([9, 8]) },
    { id: 'bare', vector: [-1, 0], contents: null, metadata: null },
  ])
  const records = await index.get(['bare', 'text', 'missing', 'bytes', 'uint8'])
  assert.deepEqual(
    records.map((r) => r.id),
    ['bare', 'text', 'bytes', 'uint8'],
  )
  const [bare, text, bytes, uint8] = records
  assert.equal(bare.contents, undefined)
  assert.equal(bare.metadata, undefined)
  assert.ok(Buffer.isBuffer(text.contents))
  assert.equal(text.contents.toString('utf8'), 'héllo wörld')
  assert.deepEqual(text.metadata, { tag: 'a', n: 1, nested: { x: [1, 2] } })
  assert.deepEqual([...bytes.contents], [0, 255, 1])
  assert.deepEqual(bytes.metadata, { when: when.toISOString() })
  assert.deepEqual([...uint8.contents], [9, 8])
  assert.equal(text.vector, undefined)

  const [onlyMeta] = await index.get(['text'], { include: ['metadata'] })
  assert.deepEqual(Object.keys(onlyMeta).sort(), ['id', 'metadata'])
  const [hit] = await index.query([1, 0], { topK: 1 })
  assert.deepEqual(Object.keys(hit).sort(), ['distance', 'id'])
  const [full] = await index.query([1, 0], { topK: 1, include: ['metadata', 'contents', 'vector'] })
  assert.equal(full.id, 'text')
  assert.equal(full.contents.toString(), 'héllo wörld')
  assert.deepEqual(full.vector, new Float32Array([1, 0]))
  assert.deepEqual(full.metadata.nested, { x: [1, 2] })

  // Upserting an existing id replaces it.
  await index.upsert([{ id: 'text', vector: [0, -1], contents: 'new' }])
  assert.equal(index.size, 4)
  const [replaced] = await index.get(['text'], { include: ['contents', 'metadata', 'vector'] })
  assert.equal(replaced.contents.toString(), 'new')
  assert.equal(replaced.metadata, undefined)
  assert.deepEqual(replaced.vector, new Float32Array([0, -1]))
})

/** The filter language's oracle for the operators used below. */
function matches(meta, filter) {
  return Object.entries(filter).every(([key, cond]) => {
    if (key === '$and') return cond.every((f) => matches(meta, f))
    if (key === '$or') return cond.some((f) => matches(meta, f))
    const v = meta[key]
    if (cond === null || typeof cond !== 'object') return v === cond
    return Object.entries(cond).every(([op, x]) => {
      switch (op) {
        case '$eq':
          return v === x
        case '$ne':
          return v !== x
        case '$gt':
          return v > x
        case '$gte':
          return v >= x
        case '$lt':
          return v < x
        case '$in':
          return x.includes(v)
        case '$nin':
          return !x.includes(v)
        default:
          throw new Error(op)
      }
    })
  })
}

test('filters against an oracle, as objects and as JSON text', async () => {
  const dim = 8
  const n = 400
  const base = data(n, dim, 5)
  const meta = (i) => ({ genre: ['news', 'blog', 'paper'][i % 3], year: 2000 + (i % 25), hot: i % 7 === 0 })
  const index = await new cv.Client().createIndex('docs', cv.generateKey(), { dimension: dim })
  await index.upsert(Array.from({ length: n }, (_, i) => ({ id: String(i), vector: row(base, dim, i), metadata: meta(i) })))
  const filters = [
    { genre: 'news' },
    { year: { $gte: 2010, $lt: 2015 } },
    { $or: [{ genre: 'paper' }, { hot: true }] },
    { $and: [{ genre: { $in: ['blog', 'paper'] } }, { year: { $ne: 2003 } }] },
    { genre: { $nin: ['news'] }, hot: false },
  ]
  const queries = data(5, dim, 6)
  for (const filter of filters) {
    for (let qi = 0; qi < 5; qi++) {
      const q = row(queries, dim, qi)
      const want = bruteForce(base, dim, q, 10, 'euclidean', (i) => matches(meta(i), filter))
      const hits = await index.query(q, { topK: 10, filters: filter, include: ['metadata'] })
      assertExact(hits, want)
      for (const h of hits) assert.ok(matches(h.metadata, filter))
      assert.deepEqual(await index.query(q, { topK: 10, filters: JSON.stringify(filter) }), hits.map(({ metadata, ...h }) => h))
    }
  }
  const [batch] = await index.queryBatch(row(queries, dim, 0), { topK: 3, filters: { genre: 'blog' } })
  assertExact(batch, bruteForce(base, dim, row(queries, dim, 0), 3, 'euclidean', (i) => meta(i).genre === 'blog'))
})

test('full text: queryText ranks documents holding the words; text makes a query hybrid', async () => {
  const index = await new cv.Client().createIndex('docs', cv.generateKey(), { dimension: 2, fullText: true })
  assert.equal(index.fullText, true)
  await index.upsert([
    { id: 'cat', vector: [1, 0], contents: 'the cat sat on the mat' },
    { id: 'dog', vector: [0, 1], contents: 'a dog barked at the cat' },
    { id: 'fish', vector: [1, 1], contents: 'fish swim', metadata: { kind: 'water' } },
  ])
  const hits = await index.queryText('cat', { topK: 5 })
  assert.deepEqual(hits.map((h) => h.id).sort(), ['cat', 'dog'])
  for (const h of hits) {
    assert.ok(h.score > 0)
    assert.equal(h.distance, -h.score)
  }
  assert.ok(hits[0].score >= hits[1].score)
  assert.deepEqual(
    (await index.queryText('swim', { filters: { kind: 'water' }, include: ['contents'] })).map((h) => h.contents.toString()),
    ['fish swim'],
  )
  const hybrid = await index.query([0, 1], { topK: 3, text: 'cat' })
  assert.equal(hybrid.length, 3)
  for (const h of hybrid) assert.equal(typeof h.score, 'number')
  // The dog is closest by vector and holds the word: first by both rankings.
  assert.equal(hybrid[0].id, 'dog')

  const later = await new cv.Client().createIndex('later', cv.generateKey(), { dimension: 2 })
  await later.upsert([{ id: 'x', vector: [1, 0], contents: 'late words' }])
  await later.enableFullText()
  assert.equal(later.fullText, true)
  assert.deepEqual((await later.queryText('words')).map((h) => h.id), ['x'])
})

/** Runs `script` in a fresh Node process (its own copy of the addon), with `env` as JSON in CV_ARGS; returns its stdout parsed as JSON. */
function inChild(script, args) {
  const out = execFileSync(process.execPath, ['-e', script], {
    env: { ...process.env, CV_ARGS: JSON.stringify(args), CV_PACKAGE: path.join(__dirname, '..') },
    encoding: 'utf8',
  })
  return JSON.parse(out)
}

const CHILD_PRELUDE = `
const cv = require(process.env.CV_PACKAGE)
const args = JSON.parse(process.env.CV_ARGS)
const key = Buffer.from(args.key, 'base64')
const out = (v) => process.stdout.write(JSON.stringify(v))
const code = (p) => p.then(() => 'ok', (e) => e.code)
`

test('on disk: another process reads what was written; no plaintext in the folder; its writer is locked out', async (t) => {
  const dir = tempDir(t)
  const key = cv.generateKey()
  const client = new cv.Client(dir)
  const index = await client.createIndex('docs', key, { dimension: 4, fullText: true })
  const secret = 'PLAINTEXT-CONTENT-7f3a'
  await index.upsert([
    { id: 'SECRET-ID-91c2', vector: [0.25, 0.5, 0.75, 1], contents: secret, metadata: { field: 'SECRET-META-44d1' } },
    { id: 'other', vector: [1, 0, 0, 0] },
  ])
  const bytes = folderBytes(dir)
  for (const needle of ['SECRET-ID-91c2', secret, 'SECRET-META-44d1', 'field']) {
    assert.equal(bytes.indexOf(Buffer.from(needle)), -1, `${needle} found in the folder`)
  }
  assert.equal(bytes.indexOf(Buffer.from(new Float32Array([0.25, 0.5, 0.75, 1]).buffer)), -1)

  const child = inChild(
    CHILD_PRELUDE +
      `;(async () => {
        const client = new cv.Client(args.dir)
        const reader = await client.loadIndex('docs', key, { readOnly: true })
        const hits = await reader.query([0.25, 0.5, 0.75, 1], { topK: 1, include: ['contents', 'metadata'] })
        out({
          names: await client.listIndexes(),
          hit: { id: hits[0].id, distance: hits[0].distance, contents: hits[0].contents.toString(), metadata: hits[0].metadata },
          write: await code(client.loadIndex('docs', key)),
          wrongKey: await code(client.loadIndex('docs', cv.generateKey(), { readOnly: true })),
          readOnlyWrite: await code(reader.upsert([{ id: 'x', vector: [1, 1, 1, 1] }])),
        })
      })()`,
    { dir, key: key.toString('base64') },
  )
  assert.deepEqual(child, {
    names: ['docs'],
    hit: { id: 'SECRET-ID-91c2', distance: 0, contents: secret, metadata: { field: 'SECRET-META-44d1' } },
    write: 'LOCKED',
    wrongKey: 'WRONG_KEY',
    readOnlyWrite: 'READ_ONLY',
  })
})

test('readOnly handles refresh to see a writer\'s commits; anchors detect a rollback', async (t) => {
  const dir = tempDir(t)
  const key = cv.generateKey()
  const client = new cv.Client(dir)
  const writer = await client.createIndex('docs', key, { dimension: 2 })
  await writer.upsert([{ id: 'a', vector: [1, 0] }])
  const reader = await client.loadIndex('docs', key, { readOnly: true })
  assert.equal(reader.size, 1)
  assert.equal(await reader.refresh(), false)

  const before = path.join(dir, '..', path.basename(dir) + '-before')
  t.after(() => fs.rmSync(before, { recursive: true, force: true }))
  fs.cpSync(path.join(dir, 'docs'), before, { recursive: true })

  await writer.upsert([{ id: 'b', vector: [0, 1] }])
  const anchor = writer.anchor()
  assert.match(anchor, /^cvanchor2-[0-9a-f]{32}-\d+-[0-9a-f]{32}$/)
  await writer.checkAnchor(anchor)
  assert.equal(reader.size, 1)
  assert.equal(await reader.refresh(), true)
  assert.equal(reader.size, 2)
  assert.deepEqual((await reader.query([0, 1], { topK: 1 }))[0].id, 'b')

  // Put the folder back as it was before 'b': the anchor proves the rollback.
  const restored = tempDir(t, 'restored')
  fs.cpSync(before, path.join(restored, 'docs'), { recursive: true })
  const old = await new cv.Client(restored).loadIndex('docs', key, { readOnly: true })
  assert.equal(old.size, 1)
  assert.equal((await rejection(old.checkAnchor(anchor))).code, 'ROLLED_BACK')
  // An anchor of another index; and text that is no anchor.
  const other = await new cv.Client().createIndex('other', cv.generateKey(), { dimension: 2 })
  assert.equal((await rejection(other.checkAnchor(anchor))).code, 'CORRUPTED')
  assert.equal((await rejection(writer.checkAnchor('not an anchor'))).code, 'INVALID_ARGUMENT')
})

test('backupTo writes a copy that opens with the same key and answers the same', async (t) => {
  const { index, key, base, dim } = await make({ n: 200 })
  await index.train({ nLists: 4 })
  const backup = tempDir(t, 'backup')
  await index.backupTo(backup)
  assert.equal((await rejection(index.backupTo(backup))).code, 'INDEX_EXISTS')
  const copy = await new cv.Client(backup).loadIndex('docs', key)
  assert.equal(copy.size, 200)
  for (let qi = 0; qi < 200; qi += 40) {
    const q = row(base, dim, qi)
    assert.deepEqual(await copy.query(q, { topK: 5, nProbes: 4 }), await index.query(q, { topK: 5, nProbes: 4 }))
  }
})

test('verify finds a flipped byte; corrupted storage is CORRUPTED', async (t) => {
  const dir = tempDir(t)
  const { index, key } = await make({ n: 100, location: dir })
  await index.verify()
  const segment = fs.readdirSync(path.join(dir, 'docs')).find((f) => f.startsWith('seg-'))
  const file = path.join(dir, 'docs', segment)
  const bytes = fs.readFileSync(file)
  bytes[Math.floor(bytes.length / 2)] ^= 0x40
  fs.writeFileSync(file, bytes)
  assert.equal((await rejection(index.verify())).code, 'CORRUPTED')
  const reader = await rejection(new cv.Client(dir).loadIndex('docs', key, { readOnly: true }))
  assert.equal(reader.code, 'CORRUPTED')
})

test('key rotations: the old key stops opening the index, the new one opens it; data-key rotation keeps the answers', async (t) => {
  const dir = tempDir(t)
  const { client, index, key, base, dim } = await make({ n: 100, location: dir })
  const q = row(base, dim, 5)
  const want = await index.query(q, { topK: 3 })
  await index.rotateDataKey()
  assert.deepEqual(await index.query(q, { topK: 3 }), want)

  const second = cv.generateKey()
  await client.rotateIndexKey('docs', key, second)
  assert.equal((await rejection(client.loadIndex('docs', key))).code, 'WRONG_KEY')
  assert.deepEqual(await (await client.loadIndex('docs', second)).query(q, { topK: 3 }), want)

  const third = cv.generateKey()
  await client.rotateKeys('docs', second, third)
  assert.equal((await rejection(client.loadIndex('docs', second, { readOnly: true }))).code, 'WRONG_KEY')
  const reopened = await new cv.Client(dir).loadIndex('docs', third, { readOnly: true })
  assert.deepEqual(await reopened.query(q, { topK: 3 }), want)
})

test('listIndexes and deleteIndex (a wrong key deletes nothing)', async (t) => {
  const dir = tempDir(t)
  const client = new cv.Client(dir)
  const keys = { b: cv.generateKey(), a: cv.generateKey() }
  for (const [name, key] of Object.entries(keys)) await client.createIndex(name, key, { dimension: 3 })
  assert.deepEqual(await client.listIndexes(), ['a', 'b'])
  assert.equal((await rejection(client.deleteIndex('a', keys.b))).code, 'WRONG_KEY')
  assert.deepEqual(await client.listIndexes(), ['a', 'b'])
  await client.deleteIndex('a', keys.a)
  assert.deepEqual(await client.listIndexes(), ['b'])
  assert.equal((await rejection(client.deleteIndex('a', keys.a))).code, 'INDEX_NOT_FOUND')
  assert.equal(fs.existsSync(path.join(dir, 'a')), false)
})

test('createIndex options: ivf_pq with pqM and refineBits, nLists and nProbes, names in any case', async () => {
  const client = new cv.Client()
  const key = cv.generateKey()
  const pq = await client.createIndex('pq', key, { dimension: 16, indexType: 'IVF_PQ', pqM: 8, refineBits: 8, metric: 'Cosine' })
  assert.equal(pq.indexType, 'ivf_pq')
  assert.equal(pq.metric, 'cosine')
  const lists = await client.createIndex('lists', key, { dimension: 16, nLists: 6, nProbes: 6 })
  await lists.upsert(Array.from({ length: 300 }, (_, i) => String(i)), data(300, 16, 9))
  await lists.train()
  assert.equal(lists.nLists, 6)
  // Six probes of six lists: exact.
  const base = data(300, 16, 9)
  assertExact(await lists.query(row(base, 16, 1), { topK: 5 }), bruteForce(base, 16, row(base, 16, 1), 5))
})

test('new Client of one location in one process is one database: an index open for writing is shared, not locked', async (t) => {
  const dir = tempDir(t)
  const key = cv.generateKey()
  const first = await new cv.Client(dir).createIndex('docs', key, { dimension: 2 })
  const second = await new cv.Client(path.join(dir, '.', '')).loadIndex('docs', key)
  await second.upsert([{ id: 'x', vector: [1, 2] }])
  assert.equal(first.size, 1)
  assert.equal((await rejection(new cv.Client(dir).loadIndex('docs', cv.generateKey()))).code, 'WRONG_KEY')
  // A private in-memory client shares nothing.
  assert.deepEqual(await new cv.Client().listIndexes(), [])
})
