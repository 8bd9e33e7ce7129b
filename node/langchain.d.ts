// Declarations of `ciphervec/langchain` (hand-written: the store is JavaScript).
import type { MaxMarginalRelevanceSearchOptions, VectorStore } from '@langchain/core/vectorstores'
import type { DocumentInterface } from '@langchain/core/documents'
import type { EmbeddingsInterface } from '@langchain/core/embeddings'
import type { Client, CreateIndexOptions, Index } from './index'

/** Where `fromTexts`, `fromDocuments` and `fromExistingIndex` put or find the index. */
export interface CiphervecStoreConfig extends Partial<Omit<CreateIndexOptions, 'dimension'>> {
  /** The index key: 32 bytes, as `generateKey()` gives. */
  indexKey: Uint8Array
  /** The database (default: `new Client(path)`, in memory without `path`). */
  client?: Client
  /** The database folder or URL when no `client` is given. */
  path?: string
  /** The index name (default 'langchain'). */
  indexName?: string
  /** Fuse the query's BM25 ranking with its vector ranking (an index with `fullText`). */
  hybrid?: boolean
  /** `fromExistingIndex` only: open for reading only. */
  readOnly?: boolean
}

/**
 * A LangChain.js `VectorStore` over an encrypted ciphervec index: texts are the items'
 * contents, metadata their metadata, both encrypted at rest. Filters are ciphervec's
 * MongoDB-style filters (or their JSON text); scores are distances (smaller is closer).
 */
export declare class CiphervecVectorStore extends VectorStore {
  FilterType: Record<string, unknown> | string
  /** The underlying encrypted index. */
  readonly index: Index
  /** Whether text searches are hybrid. */
  readonly hybrid: boolean
  constructor(embeddings: EmbeddingsInterface, args: { index: Index; hybrid?: boolean })
  _vectorstoreType(): string
  addVectors(vectors: number[][], documents: DocumentInterface[], options?: { ids?: string[] }): Promise<string[]>
  addDocuments(documents: DocumentInterface[], options?: { ids?: string[] }): Promise<string[]>
  /** Deletes the documents `{ids}`; with no ids, every document. */
  delete(params?: { ids?: string[] }): Promise<void>
  getByIds(ids: string[]): Promise<DocumentInterface[]>
  similaritySearchVectorWithScore(
    query: number[],
    k: number,
    filter?: this['FilterType'],
  ): Promise<[DocumentInterface, number][]>
  maxMarginalRelevanceSearch(
    query: string,
    options: MaxMarginalRelevanceSearchOptions<this['FilterType']>,
  ): Promise<DocumentInterface[]>
  static fromTexts(
    texts: string[],
    metadatas: object[] | object,
    embeddings: EmbeddingsInterface,
    dbConfig: CiphervecStoreConfig,
  ): Promise<CiphervecVectorStore>
  static fromDocuments(
    docs: DocumentInterface[],
    embeddings: EmbeddingsInterface,
    dbConfig: CiphervecStoreConfig,
  ): Promise<CiphervecVectorStore>
  static fromExistingIndex(embeddings: EmbeddingsInterface, dbConfig: CiphervecStoreConfig): Promise<CiphervecVectorStore>
}
