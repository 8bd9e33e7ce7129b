'use strict'
// What the suites share: seeded data, the brute-force oracle, temporary folders.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const cv = require('../..')

/** A seeded generator of uniform numbers in [0, 1) (mulberry32). */
function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A seeded standard normal generator (Box-Muller). */
function normal(seed) {
  const u = rng(seed)
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u())
}

/** `n` clustered vectors of `dim` floats, row-major (8 clusters, as the Python tests). */
function data(n, dim, seed = 1) {
  const g = normal(seed)
  const pick = rng(seed + 7)
  const centers = Array.from({ length: 8 }, () => Array.from({ length: dim }, () => 3 * g()))
  const out = new Float32Array(n * dim)
  for (let i = 0; i < n; i++) {
    const c = centers[Math.floor(pick() * 8)]
    for (let j = 0; j < dim; j++) out[i * dim + j] = c[j] + g()
  }
  return out
}

/** Row `i` of a row-major matrix. */
function row(m, dim, i) {
  return m.subarray(i * dim, (i + 1) * dim)
}

/** The distance of `a` to `b` under `metric`, in float64. */
function distance(a, b, metric) {
  let dot = 0
  let na = 0
  let nb = 0
  let l2 = 0
  for (let j = 0; j < a.length; j++) {
    dot += a[j] * b[j]
    na += a[j] * a[j]
    nb += b[j] * b[j]
    l2 += (a[j] - b[j]) ** 2
  }
  switch (metric) {
    case 'squared_euclidean':
      return l2
    case 'cosine':
      return 1 - dot / Math.sqrt(na * nb)
    case 'inner_product':
      return -dot
    default:
      return Math.sqrt(l2)
  }
}

/** The `k` nearest rows of `base` to `q` by brute force: `[{id, distance}]`, closest first (ids are row numbers as text). */
function bruteForce(base, dim, q, k, metric = 'euclidean', keep = () => true) {
  const all = []
  for (let i = 0; i < base.length / dim; i++) {
    if (keep(i)) all.push({ id: String(i), distance: distance(row(base, dim, i), q, metric) })
  }
  all.sort((x, y) => x.distance - y.distance || Number(x.id) - Number(y.id))
  return all.slice(0, k)
}

/** Hits equal the oracle's: same distances (within float32 rounding), same ids where distances are not tied. */
function assertExact(hits, want) {
  assert.equal(hits.length, want.length)
  for (let i = 0; i < want.length; i++) {
    const tol = 1e-3 * Math.max(1, Math.abs(want[i].distance))
    assert.ok(
      Math.abs(hits[i].distance - want[i].distance) <= tol,
      `hit ${i}: distance ${hits[i].distance}, oracle ${want[i].distance}`,
    )
    const tied = want.some((w, j) => j !== i && Math.abs(w.distance - want[i].distance) <= tol)
    if (!tied) assert.equal(hits[i].id, want[i].id, `hit ${i}`)
  }
}

/** A fresh folder, removed when the test ends. */
function tempDir(t, name = 'cv') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ciphervec-node-${name}-`))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Every byte of every file under `dir`. */
function folderBytes(dir) {
  const chunks = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) chunks.push(fs.readFileSync(path.join(entry.parentPath ?? entry.path, entry.name)))
  }
  return Buffer.concat(chunks)
}

/** An index of `n` rows of `data(n, dim)` with ids '0'..'n-1'. */
async function make({ n = 500, dim = 16, location, seed = 1, ...options } = {}) {
  const key = cv.generateKey()
  const client = new cv.Client(location)
  const index = await client.createIndex(options.name ?? 'docs', key, { dimension: dim, ...withoutName(options) })
  const base = data(n, dim, seed)
  await index.upsert(
    Array.from({ length: n }, (_, i) => String(i)),
    base,
  )
  return { client, key, index, base, dim }
}

function withoutName({ name, ...rest }) {
  return rest
}

/** The error a promise rejects with (fails if it resolves). */
async function rejection(promise) {
  try {
    await promise
  } catch (e) {
    return e
  }
  assert.fail('expected a rejection')
}

module.exports = {
  cv,
  rng,
  normal,
  data,
  row,
  distance,
  bruteForce,
  assertExact,
  tempDir,
  folderBytes,
  make,
  rejection,
}
