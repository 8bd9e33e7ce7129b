// Compiled by test/types.test.js with `tsc --noEmit --strict`: the declarations (index.d.ts,
// generated from the Rust source plus lib/header.d.ts; langchain.d.ts) describe the API as
// the other suites use it. Never run.
import * as cv from 'ciphervec'
import { Client, CiphervecError, DimensionMismatchError, type Hit, type StoredItem } from 'ciphervec'

async function main(): Promise<void> {
  const key: Buffer = cv.generateKey()
  const client = new Client()
  const disk = new Client('/tmp/x', { cacheBudget: 1 << 20 })
  const index: cv.Index = await client.createIndex('docs', key, {
    dimension: 4,
    indexType: 'ivf_pq',
    metric: 'cosine',
    nLists: 4,
    nProbes: 2,
    pqM: 2,
    fullText: true,
  })
  await index.upsert([{ id: 'a', vector: new Float32Array(4), contents: 'text', metadata: { year: 2020 } }])
  await index.upsert([{ id: 'b', vector: [1, 2, 3, 4], contents: Buffer.from('x') }])
  await index.upsert(['c', 'd'], new Float32Array(8))
  await index.train({ nLists: 2, maxIters: 5 })
  const hits: Hit[] = await index.query([1, 0, 0, 0], {
    topK: 3,
    nProbes: 2,
    filters: { year: { $gte: 2000 } },
    include: ['metadata', 'contents', 'vector'],
    rerank: 4,
    text: 'words',
  })
  const first: Hit | undefined = hits[0]
  const distance: number = first?.distance ?? 0
  const contents: Buffer | undefined = first?.contents
  const vector: Float32Array | undefined = first?.vector
  const batches: Hit[][] = await index.queryBatch(new Float32Array(8), { topK: 1 })
  const batches2: Hit[][] = await index.queryBatch([[1, 2, 3, 4], new Float32Array(4)])
  const text: Hit[] = await index.queryText('words', { topK: 2, filters: '{"year": 2020}' })
  const records: StoredItem[] = await index.get(['a'], { include: ['vector'] })
  const deleted: number = await index.delete(['a'])
  const ids: string[] = await index.listIds()
  const size: number = index.size
  const trained: boolean = index.isTrained()
  const dim: number = index.dimension
  const metric: 'euclidean' | 'squared_euclidean' | 'cosine' | 'inner_product' = index.metric
  await index.compact()
  await index.rotateDataKey()
  const report = await index.verify()
  const bytes: number = report.bytes
  await index.backupTo('/tmp/backup')
  const anchor: string = index.anchor()
  await index.checkAnchor(anchor)
  const changed: boolean = await index.refresh()
  const names: string[] = await client.listIndexes()
  const reader: cv.Index = await disk.loadIndex('docs', key, { readOnly: true })
  await client.deleteIndex('docs', key)
  try {
    await index.query([1])
  } catch (e) {
    if (e instanceof DimensionMismatchError) {
      const code: 'DIMENSION_MISMATCH' = e.code
    } else if (e instanceof CiphervecError) {
      const code: cv.CiphervecErrorCode = e.code
    }
  }
  void [distance, contents, vector, batches, batches2, text, records, deleted, ids, size, trained, dim, metric, bytes, changed, names, reader]
}

void main
