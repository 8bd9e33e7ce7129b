"""query_batch against one query per call, and its scaling from one thread to two: three
`examples/query_rounds` processes (one query at a time; `--batch`; `--batch --threads 2`)
answer interleaved rounds of all queries; prints median QPS and ratios.

    cargo build --release --example query_rounds
    python3 bench/batch_rounds.py [DATA_DIR] [ROUNDS] -- --type flat --probes 32
"""
import json
import statistics
import subprocess
import sys

args = sys.argv[1:]
extra = args[args.index("--") + 1:] if "--" in args else []
plain = args[:args.index("--")] if "--" in args else args
data = plain[0] if plain else "../shared/data/wordnet-minilm-50k"
rounds = int(plain[1]) if len(plain) > 1 else 9
modes = {
    "per query, 1 thread": [],
    "query_batch, 1 thread": ["--batch"],
    "query_batch, 2 threads": ["--batch", "--threads", "2"],
}
procs = {}
for name, flags in modes.items():
    procs[name] = subprocess.Popen(
        ["target/release/examples/query_rounds", "--data", data] + extra + flags,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    print(name, procs[name].stdout.readline().strip(), flush=True)
results = {name: [] for name in modes}
for r in range(rounds):
    order = list(procs.items())
    order = order[r % len(order):] + order[:r % len(order)]
    for name, p in order:
        p.stdin.write("round\n")
        p.stdin.flush()
        results[name].append(json.loads(p.stdout.readline()))
for p in procs.values():
    p.stdin.close()
    p.wait()
qps = {name: statistics.median(x["qps"] for x in rs) for name, rs in results.items()}
base = qps["per query, 1 thread"]
for name in modes:
    print(f"{name}: {qps[name]:,.0f} QPS ({qps[name] / base:.2f}x per query), "
          f"recall@10 {results[name][0]['recall@10']:.4f}")
print(f"query_batch 2 threads / 1 thread: "
      f"{qps['query_batch, 2 threads'] / qps['query_batch, 1 thread']:.2f}x")
