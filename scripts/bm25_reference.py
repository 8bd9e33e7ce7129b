#!/usr/bin/env python3
"""Writes tests/data/bm25_reference.json: a corpus, queries and the BM25 scores an independent
implementation of Lucene's formula gives (the oracle of tests/api/full_text.rs).

    python3 scripts/bm25_reference.py [../shared/data/wordnet-minilm-50k]

Corpus: the first 1,200 WordNet glosses of the shared data set, reduced to ASCII letters and
digits separated by single spaces, so that any word tokenizer (this script's split, the
crate's Unicode word boundaries) sees the same tokens. Queries: lemmas of held-out synsets
(texts.query.tsv) that occur in the corpus, some with a word repeated.

BM25 (Lucene 8+): score(q, d) = sum over query tokens t (repeats count again) of
idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl)), idf(t) = ln(1 + (N - n + 0.5) / (n + 0.5)),
k1 = 1.2, b = 0.75, exact document lengths.
"""
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

K1, B = 1.2, 0.75
N_DOCS, N_QUERIES, TOP = 1200, 120, 50


def words(text):
    return re.findall(r"[A-Za-z0-9]+", text)


def main():
    data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/wordnet-minilm-50k")
    lines = (data / "texts.base.tsv").read_text().splitlines()[:N_DOCS]
    docs = [" ".join(words(line.split("\t", 1)[1])) for line in lines]
    tokens = [d.lower().split() for d in docs]
    tfs = [Counter(t) for t in tokens]
    n = len(docs)
    avgdl = sum(len(t) for t in tokens) / n
    df = Counter(term for tf in tfs for term in tf)

    def score(query_tokens, i):
        s = 0.0
        for t in query_tokens:
            if t not in tfs[i]:
                continue
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            tf = tfs[i][t]
            s += idf * tf / (tf + K1 * (1 - B + B * len(tokens[i]) / avgdl))
        return s

    queries = []
    for line in (data / "texts.query.tsv").read_text().splitlines():
        lemmas = line.split("\t", 1)[1].split(":", 1)[0].split(",")
        q = " ".join(words(lemmas[0]))
        if q and any(t in df for t in q.lower().split()):
            if len(queries) % 10 == 3:
                q = q + " " + q.split()[0]  # a repeated word counts twice
            queries.append(q)
        if len(queries) == N_QUERIES:
            break
    expected = []
    for q in queries:
        qt = q.lower().split()
        scored = [(i, score(qt, i)) for i in range(n)]
        scored = [(i, s) for i, s in scored if s > 0]
        scored.sort(key=lambda x: (-x[1], x[0]))
        expected.append([[i, s] for i, s in scored[:TOP]])
    out = {"k1": K1, "b": B, "docs": docs, "queries": queries, "expected": expected}
    path = Path(__file__).resolve().parent.parent / "tests/data/bm25_reference.json"
    path.write_text(json.dumps(out, indent=0) + "\n")
    print(f"{path}: {n} docs, {len(queries)} queries")


if __name__ == "__main__":
    main()
