// `import { CiphervecVectorStore } from 'ciphervec/langchain'`: the LangChain.js store
// (lib/langchain-store.js) over @langchain/core's ES module build, the one an ES module
// application imports its `Document` from. @langchain/core is an optional peer dependency.
import store from './lib/langchain-store.js'

let core
try {
  const [vectorstores, documents, math] = await Promise.all([
    import('@langchain/core/vectorstores'),
    import('@langchain/core/documents'),
    import('@langchain/core/utils/math'),
  ])
  core = {
    VectorStore: vectorstores.VectorStore,
    Document: documents.Document,
    maximalMarginalRelevance: math.maximalMarginalRelevance,
  }
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND') throw store.missingLangChain(e)
  throw e
}

export const CiphervecVectorStore = store.defineStore(core)
export default { CiphervecVectorStore }
