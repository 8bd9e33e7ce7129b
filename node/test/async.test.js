'use strict'
// Calls run off the JavaScript thread: the event loop keeps turning during a batch of 1,000
// queries, a large write and a training; queries started together with Promise.all answer
// as one by one; worker threads read while the main thread writes.

const assert = require('node:assert/strict')
const path = require('node:path')
const { test } = require('node:test')
const { Worker } = require('node:worker_threads')

const { cv, data, row, bruteForce, assertExact, tempDir, rejection } = require('./support/helpers.js')

const TICK_MS = 2

/**
 * Runs `work()` while a `setInterval` of TICK_MS ticks; resolves to its result, its duration
 * and the ticks seen while it was pending (with the longest gap between two of them).
 */
async function whileTicking(work) {
  const ticks = []
  const timer = setInterval(() => ticks.push(performance.now()), TICK_MS)
  const start = performance.now()
  let result
  try {
    result = await work()
  } finally {
    clearInterval(timer)
  }
  const ms = performance.now() - start
  let maxGap = 0
  let last = start
  for (const t of ticks) {
    maxGap = Math.max(maxGap, t - last)
    last = t
  }
  return { result, ms, ticks: ticks.length, maxGap }
}

/**
 * The loop turned during the call: at least a tenth of the ticks a free loop would have
 * seen (a call blocking the thread gets at most one, after it returns). Relative to the
 * call's own duration, so a slow machine makes it longer, not failing.
 */
function assertTurning(t, what, { ms, ticks, maxGap }) {
  t.diagnostic(`${what}: ${ms.toFixed(0)} ms, ${ticks} ticks of ${TICK_MS} ms, longest gap ${maxGap.toFixed(1)} ms`)
  assert.ok(ms >= 20 * TICK_MS, `${what} took ${ms} ms: too short to tell`)
  assert.ok(ticks >= Math.max(5, ms / TICK_MS / 10), `${what}: ${ticks} ticks in ${ms.toFixed(0)} ms`)
}

test('the event loop turns during a batch of 1,000 queries, an upsert of 40,000 rows and a training', async (t) => {
  const dim = 32
  const n = 40_000
  const base = data(n, dim, 11)
  const ids = Array.from({ length: n }, (_, i) => String(i))
  const index = await new cv.Client().createIndex('docs', cv.generateKey(), { dimension: dim })

  const upsert = await whileTicking(() => index.upsert(ids, base))
  assertTurning(t, 'upsert of 40,000 rows', upsert)
  assert.equal(index.size, n)

  const queries = data(1000, dim, 12)
  const batch = await whileTicking(() => index.queryBatch(queries, { topK: 10 }))
  assertTurning(t, 'queryBatch of 1,000 (exact)', batch)
  assert.equal(batch.result.length, 1000)
  for (let qi = 0; qi < 1000; qi += 100) {
    const q = row(queries, dim, qi)
    assertExact(batch.result[qi], bruteForce(base, dim, q, 10))
  }

  const train = await whileTicking(() => index.train({ nLists: 64 }))
  assertTurning(t, 'train (64 lists)', train)
  assert.equal(index.isTrained(), true)
  // Probing every list stays exact after training.
  const q = row(queries, dim, 7)
  assertExact(await index.query(q, { topK: 10, nProbes: 64 }), bruteForce(base, dim, q, 10))
})

test('queries started together (Promise.all) answer as one by one, and as brute force', async () => {
  const dim = 16
  const n = 3000
  const base = data(n, dim, 21)
  const index = await new cv.Client().createIndex('docs', cv.generateKey(), { dimension: dim })
  await index.upsert(Array.from({ length: n }, (_, i) => String(i)), base)
  await index.train({ nLists: 16 })
  const queries = data(200, dim, 22)
  const together = await Promise.all(
    Array.from({ length: 200 }, (_, i) => index.query(row(queries, dim, i), { topK: 5, nProbes: 4 })),
  )
  for (let i = 0; i < 200; i++) {
    assert.deepEqual(together[i], await index.query(row(queries, dim, i), { topK: 5, nProbes: 4 }))
  }
  // Exact (every list probed), concurrently, against the oracle.
  const exact = await Promise.all(
    Array.from({ length: 20 }, (_, i) => index.query(row(queries, dim, i), { topK: 5, nProbes: 16 })),
  )
  exact.forEach((hits, i) => assertExact(hits, bruteForce(base, dim, row(queries, dim, i), 5)))
  // A write and reads in flight at once: the reads see the index before or after the write.
  const extra = data(1, dim, 23)
  const [, ...during] = await Promise.all([
    index.upsert(['new'], extra),
    ...Array.from({ length: 20 }, () => index.query(extra, { topK: 1, nProbes: 16 })),
  ])
  const before = bruteForce(base, dim, extra, 1)[0]
  for (const [hit] of during) {
    assert.ok(hit.id === 'new' || hit.id === before.id, hit.id)
    if (hit.id === 'new') assert.equal(hit.distance, 0)
  }
  assert.deepEqual((await index.query(extra, { topK: 1, nProbes: 16 }))[0], { id: 'new', distance: 0 })
})

/**
 * A reader in a worker thread: opens the index (the shared handle of this process's
 * database, or `readOnly` through a database of its own that `refresh()`es), and until told
 * to stop, checks that the rows it can see are found exactly: row `j` of the data is the
 * nearest item to itself, as id `j` at distance 0. Posts what it saw.
 */
const READER = `
const { parentPort, workerData } = require('node:worker_threads')
const cv = require(workerData.pkg)
const { dir, key, base, dim, batch, readOnly } = workerData
let stop = false
const onMessage = (m) => { if (m === 'stop') stop = true }
parentPort.on('message', onMessage)
;(async () => {
  const client = readOnly ? new cv.Client(dir, { cacheBudget: 1 << 20 }) : new cv.Client(dir)
  const index = await client.loadIndex('docs', Buffer.from(key), { readOnly })
  const sizes = []
  const problems = []
  let checks = 0
  const check = async () => {
    if (readOnly) await index.refresh()
    const size = index.size
    if (size % batch !== 0) problems.push('size ' + size + ' is not whole batches')
    if (sizes.length && size < sizes[sizes.length - 1]) problems.push('size went back to ' + size)
    sizes.push(size)
    const j = Math.floor(Math.random() * size)
    const q = base.subarray(j * dim, (j + 1) * dim)
    const [hit] = await index.query(q, { topK: 1 })
    if (!hit || hit.id !== String(j) || hit.distance !== 0) problems.push('row ' + j + ': ' + JSON.stringify(hit))
    checks++
  }
  while (!stop) {
    await check()
    await new Promise((r) => setImmediate(r))
  }
  parentPort.off('message', onMessage)
  await check()
  const all = await index.listIds()
  parentPort.postMessage({ checks, sizes: [sizes[0], sizes[sizes.length - 1]], problems: problems.slice(0, 5), ids: all.length })
})().catch((e) => parentPort.postMessage({ error: e.code + ': ' + e.message }))
`

test('worker threads read (a shared handle, and a read-only one that refreshes) while the main thread writes', async (t) => {
  const dir = tempDir(t)
  const key = cv.generateKey()
  const dim = 8
  const batch = 50
  const batches = 20
  const base = data(batch * batches, dim, 31)
  const index = await new cv.Client(dir).createIndex('docs', key, { dimension: dim })
  const idsOf = (b) => Array.from({ length: batch }, (_, i) => String(b * batch + i))
  await index.upsert(idsOf(0), base.subarray(0, batch * dim))

  const workers = [false, true].map(
    (readOnly) =>
      new Worker(READER, {
        eval: true,
        workerData: { pkg: path.join(__dirname, '..'), dir, key: new Uint8Array(key), base, dim, batch, readOnly },
      }),
  )
  const exits = workers.map((w) => new Promise((r) => w.once('exit', r)))
  const reports = workers.map(
    (w) =>
      new Promise((resolve, reject) => {
        w.once('message', resolve)
        w.once('error', reject)
      }),
  )
  // Let the readers start, then write the other batches, one commit each.
  await new Promise((r) => setTimeout(r, 50))
  for (let b = 1; b < batches; b++) {
    await index.upsert(idsOf(b), base.subarray(b * batch * dim, (b + 1) * batch * dim))
    await new Promise((r) => setTimeout(r, 5))
  }
  for (const w of workers) w.postMessage('stop')
  const [shared, readOnly] = await Promise.all(reports)
  await Promise.all(exits)
  for (const [name, report] of Object.entries({ shared, readOnly })) {
    t.diagnostic(`${name} reader: ${report.checks} checks, sizes ${report.sizes}`)
    assert.equal(report.error, undefined, `${name}: ${report.error}`)
    assert.deepEqual(report.problems, [], name)
    assert.ok(report.checks >= 2, name)
    assert.equal(report.sizes[1], batch * batches, name)
    assert.equal(report.ids, batch * batches, name)
  }
  // The writer is one per process: the shared handle's database holds the lock, a database
  // of its own in the main thread cannot take it.
  assert.equal(
    (await rejection(new cv.Client(dir, { cacheBudget: 2 << 20 }).loadIndex('docs', key))).code,
    'LOCKED',
  )
})

test('a worker thread writes through the same index the main thread has open', async (t) => {
  const dir = tempDir(t)
  const key = cv.generateKey()
  const index = await new cv.Client(dir).createIndex('docs', key, { dimension: 2 })
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads')
    const cv = require(workerData.pkg)
    ;(async () => {
      const index = await new cv.Client(workerData.dir).loadIndex('docs', Buffer.from(workerData.key))
      await index.upsert([{ id: 'from-worker', vector: [3, 4], contents: 'hello' }])
      parentPort.postMessage(index.size)
    })().catch((e) => parentPort.postMessage(e.code))
    `,
    { eval: true, workerData: { pkg: path.join(__dirname, '..'), dir, key: new Uint8Array(key) } },
  )
  const exit = new Promise((r) => worker.once('exit', r))
  const size = await new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  await exit
  assert.equal(size, 1)
  assert.equal(index.size, 1)
  const [hit] = await index.query([3, 4], { topK: 1, include: ['contents'] })
  assert.equal(hit.id, 'from-worker')
  assert.equal(hit.contents.toString(), 'hello')
  // The worker's exit closed nothing of the main thread's.
  await index.upsert([{ id: 'main', vector: [0, 0] }])
  assert.deepEqual(await index.listIds(), ['from-worker', 'main'])
})

test('a worker terminated with calls in flight takes nothing down; its folder opens after', async (t) => {
  const dir = tempDir(t)
  const key = cv.generateKey()
  for (let round = 0; round < 3; round++) {
    const worker = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads')
      const cv = require(workerData.pkg)
      ;(async () => {
        const client = new cv.Client(workerData.dir)
        const index = workerData.round === 0
          ? await client.createIndex('docs', Buffer.from(workerData.key), { dimension: 16 })
          : await client.loadIndex('docs', Buffer.from(workerData.key))
        const rows = new Float32Array(5000 * 16).map((_, i) => Math.sin(i + workerData.round))
        await index.upsert(Array.from({ length: 5000 }, (_, i) => String(i)), rows)
        parentPort.postMessage('ready')
        // Left in flight when the thread is terminated.
        index.queryBatch(rows.subarray(0, 16 * 1000), { topK: 10 })
        index.upsert(['extra'], rows.subarray(0, 16))
        index.train({ nLists: 8 })
      })()
      `,
      { eval: true, workerData: { pkg: path.join(__dirname, '..'), dir, key: new Uint8Array(key), round } },
    )
    const exit = new Promise((r) => worker.once('exit', r))
    await new Promise((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    await worker.terminate()
    await exit
  }
  // Whatever the writes in flight did, the index opens, its 5,000 rows are there, and it
  // answers exactly (before or after the training that may have finished).
  // (Read-only: a task of the last worker may still be finishing, holding the writer.)
  const index = await new cv.Client(dir, { cacheBudget: 1 << 20 }).loadIndex('docs', key, { readOnly: true })
  const ids = await index.listIds()
  assert.ok(ids.length === 5000 || ids.length === 5001, String(ids.length))
  const rows = new Float32Array(5000 * 16).map((_, i) => Math.sin(i + 2))
  const [hit] = await index.query(rows.subarray(16 * 42, 16 * 43), { topK: 1, nProbes: 100 })
  assert.deepEqual(hit, { id: '42', distance: 0 })
  await index.verify()
})
