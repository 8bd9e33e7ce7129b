#!/usr/bin/env node
'use strict'
// ciphervec through Node.js next to the same work from Rust (examples/node_baseline.rs), on
// the same data in the same run, printed as ratios:
// - upsert(ids, Float32Array) in batches of 10,000 rows into a folder, vs Rust upsert_rows;
// - one query per call (each awaited), vs Rust query, on read-only handles of the same index;
// - one queryBatch of every query, vs Rust query_batch;
// - Promise.all of every query at once vs one at a time (the libuv pool's parallelism).
// Node's answers must equal Rust's (the script fails otherwise).
//
//   bench/node_bench.sh                  # builds the addon, then runs this
//   node bench/node_bench.js [--data DIR] [--nq 1000] [--probes 16] [--rounds 3]
//
// DIR holds base.fvecs and query.fvecs (default ../shared/data/wordnet-minilm-50k, else
// 50,000 x 384 synthetic clustered rows written under target/node-bench).

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')
const cv = require(path.join(ROOT, 'node'))

function args() {
  const a = { data: path.join(ROOT, '..', 'shared', 'data', 'wordnet-minilm-50k'), nq: 1000, probes: 16, rounds: 3, batch: 10_000 }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '')
    if (!(k in a)) throw new Error(`unknown option ${argv[i]}`)
    a[k] = k === 'data' ? argv[i + 1] : Number(argv[i + 1])
  }
  return a
}

/** The rows of an .fvecs file as one Float32Array, and its dimension. */
function readFvecs(file) {
  const bytes = fs.readFileSync(file)
  const dim = bytes.readInt32LE(0)
  const n = bytes.length / (4 * (dim + 1))
  const out = new Float32Array(n * dim)
  for (let i = 0; i < n; i++) {
    const at = i * 4 * (dim + 1) + 4
    out.set(new Float32Array(bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + 4 * dim)), i * dim)
  }
  return { rows: out, dim, n }
}

function writeFvecs(file, rows, dim) {
  const n = rows.length / dim
  const out = Buffer.alloc(n * 4 * (dim + 1))
  for (let i = 0; i < n; i++) {
    out.writeInt32LE(dim, i * 4 * (dim + 1))
    Buffer.from(rows.buffer, rows.byteOffset + i * dim * 4, dim * 4).copy(out, i * 4 * (dim + 1) + 4)
  }
  fs.writeFileSync(file, out)
}

/** Synthetic clustered data (as the tests' generator), written as .fvecs under `dir`. */
function synthetic(dir) {
  const { data } = require(path.join(ROOT, 'node', 'test', 'support', 'helpers.js'))
  fs.mkdirSync(dir, { recursive: true })
  if (!fs.existsSync(path.join(dir, 'query.fvecs'))) {
    writeFvecs(path.join(dir, 'base.fvecs'), data(50_000, 384, 1), 384)
    writeFvecs(path.join(dir, 'query.fvecs'), data(1000, 384, 2), 384)
  }
  return dir
}

async function best(rounds, work) {
  let seconds = Infinity
  let result
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint()
    result = await work()
    seconds = Math.min(seconds, Number(process.hrtime.bigint() - start) / 1e9)
  }
  return { seconds, result }
}

async function main() {
  const a = args()
  const work = path.join(ROOT, 'target', 'node-bench')
  fs.mkdirSync(work, { recursive: true })
  const data = fs.existsSync(path.join(a.data, 'query.fvecs')) ? a.data : synthetic(path.join(work, 'synthetic'))
  const base = readFvecs(path.join(data, 'base.fvecs'))
  const queries = readFvecs(path.join(data, 'query.fvecs'))
  const nq = Math.min(a.nq, queries.n)
  const dim = base.dim
  console.log(`data ${data}: ${base.n} x ${dim}, ${nq} queries, top 10 at nProbes ${a.probes}, best of ${a.rounds}`)

  const db = path.join(work, 'db')
  const key = cv.generateKey()
  const keyFile = path.join(work, 'key.b64')
  fs.writeFileSync(keyFile, key.toString('base64'), { mode: 0o600 })
  fs.chmodSync(keyFile, 0o600)
  const ids = Array.from({ length: base.n }, (_, i) => String(i))

  /** Seconds to upsert every row, `batch` at a time, into a fresh index of `folder`. */
  async function upsertAll(folder) {
    fs.rmSync(folder, { recursive: true, force: true })
    const index = await new cv.Client(folder).createIndex('bench', key, { dimension: dim })
    const start = process.hrtime.bigint()
    for (let s = 0; s < base.n; s += a.batch) {
      const e = Math.min(base.n, s + a.batch)
      await index.upsert(ids.slice(s, e), base.rows.subarray(s * dim, e * dim))
    }
    return { index, seconds: Number(process.hrtime.bigint() - start) / 1e9 }
  }

  const { index } = await upsertAll(db)
  let start = process.hrtime.bigint()
  await index.train()
  console.log(`built: ${index.nLists} lists, trained in ${(Number(process.hrtime.bigint() - start) / 1e9).toFixed(1)} s`)

  // Queries go to a read-only handle from a database of its own (a budget no index reaches
  // is the default's), the kind of handle the Rust side opens beside this writer.
  const reader = await new cv.Client(db, { cacheBudget: Number.MAX_SAFE_INTEGER }).loadIndex('bench', key, { readOnly: true })
  const opts = { topK: 10, nProbes: a.probes }
  const qs = Array.from({ length: nq }, (_, i) => queries.rows.subarray(i * dim, (i + 1) * dim))
  const flat = queries.rows.subarray(0, nq * dim)
  const timed = async (work) => {
    const start = process.hrtime.bigint()
    const result = await work()
    return { seconds: Number(process.hrtime.bigint() - start) / 1e9, result }
  }
  // Node and Rust take turns, round after round (the machine is shared: a burst of load hits
  // both sides alike); each figure is the best of its rounds (Rust's process runs each of
  // its measures twice per round, the first in a fresh process being cold).
  const node = { upsert: Infinity, single: Infinity, batch: Infinity, together: Infinity }
  const rust = { upsert_rows_per_s: 0, qps_single: 0, qps_batch: 0, qps_two_threads: 0 }
  for (let r = 0; r < a.rounds; r++) {
    node.upsert = Math.min(node.upsert, (await upsertAll(`${db}-upsert`)).seconds)
    fs.rmSync(`${db}-upsert`, { recursive: true, force: true })
    const single = await timed(async () => {
      const out = []
      for (const q of qs) out.push(await reader.query(q, opts))
      return out
    })
    const batch = await timed(() => reader.queryBatch(flat, opts))
    const together = await timed(() => Promise.all(qs.map((q) => reader.query(q, opts))))
    assert(JSON.stringify(batch.result) === JSON.stringify(single.result), 'queryBatch answers as query')
    assert(JSON.stringify(together.result) === JSON.stringify(single.result), 'Promise.all answers as one by one')
    node.single = Math.min(node.single, single.seconds)
    node.batch = Math.min(node.batch, batch.seconds)
    node.together = Math.min(node.together, together.seconds)

    const out = JSON.parse(
      execFileSync(
        'cargo',
        ['run', '--release', '-q', '--example', 'node_baseline', '--', data, db, 'bench', keyFile, String(a.probes), String(a.batch), String(nq), '2'],
        { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'inherit'] },
      )
        .trim()
        .split('\n')
        .pop(),
    )
    const nodeIds = single.result.map((hits) => hits.map((h) => h.id))
    assert(JSON.stringify(nodeIds) === JSON.stringify(out.ids), 'Node answers as Rust')
    for (const k of Object.keys(rust)) rust[k] = Math.max(rust[k], out[k])
  }

  const row = (what, nodeRate, rustRate, unit) =>
    console.log(
      `${what.padEnd(44)} Node ${nodeRate.toFixed(0).padStart(7)} ${unit}  Rust ${rustRate.toFixed(0).padStart(7)} ${unit}  ratio ${(nodeRate / rustRate).toFixed(2)}`,
    )
  row('upsert(ids, Float32Array) vs upsert_rows', base.n / node.upsert, rust.upsert_rows_per_s, 'rows/s')
  row('query, one per call (awaited)', nq / node.single, rust.qps_single, 'QPS')
  row('queryBatch vs query_batch', nq / node.batch, rust.qps_batch, 'QPS')
  row('Promise.all of every query vs 2 Rust threads', nq / node.together, rust.qps_two_threads, 'QPS')
  console.log(
    `Promise.all: ${(node.single / node.together).toFixed(2)}x the QPS of one query at a time ` +
      `(libuv pool of ${process.env.UV_THREADPOOL_SIZE ?? 4} threads, ${require('node:os').availableParallelism()} CPUs)`,
  )
  fs.rmSync(db, { recursive: true, force: true })
  fs.rmSync(keyFile, { force: true })
}

function assert(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
