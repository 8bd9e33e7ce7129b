'use strict'
// `require('ciphervec/langchain')`: the LangChain.js store (lib/langchain-store.js) over
// @langchain/core's CommonJS build. @langchain/core is an optional peer dependency.

const { defineStore, missingLangChain } = require('./lib/langchain-store.js')

let core
try {
  core = {
    VectorStore: require('@langchain/core/vectorstores').VectorStore,
    Document: require('@langchain/core/documents').Document,
    maximalMarginalRelevance: require('@langchain/core/utils/math').maximalMarginalRelevance,
  }
} catch (e) {
  if (e && e.code === 'MODULE_NOT_FOUND') throw missingLangChain(e)
  throw e
}

module.exports = { CiphervecVectorStore: defineStore(core) }
