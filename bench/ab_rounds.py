"""A/B of two builds of `examples/query_rounds` in one interleaved run: each setting runs
under build A and build B as separate processes, and every round asks each of them for one
round of all queries, in rotating order. Prints median QPS per build and the median of the
per-round ratios B/A (on a shared, noisy machine the ratio of neighbours in time is far
steadier than either figure), and both recalls (a change meant to be speed-only must not
move them).

    git stash; cargo build --release --example query_rounds
    cp target/release/examples/query_rounds /tmp/qr-a; git stash pop
    cargo build --release --example query_rounds
    python3 bench/ab_rounds.py /tmp/qr-a target/release/examples/query_rounds \\
        [--data DIR] [--rounds 9] -- --type pq:96 --probes 40 --rerank 5 [; --batch ...]

Settings after `--` are separated by `;` (each one a pair of processes).
"""
import json
import statistics
import subprocess
import sys


def main():
    args = sys.argv[1:]
    split = args.index("--") if "--" in args else len(args)
    own, rest = args[:split], args[split + 1:]
    binary_a, binary_b = own[0], own[1]
    data = own[own.index("--data") + 1] if "--data" in own else "../shared/data/wordnet-minilm-50k"
    rounds = int(own[own.index("--rounds") + 1]) if "--rounds" in own else 9
    settings = [s.split() for s in " ".join(rest).split(";") if s.strip()]
    procs = []
    for flags in settings:
        for label, binary in (("A", binary_a), ("B", binary_b)):
            p = subprocess.Popen([binary, "--data", data] + flags, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            json.loads(p.stdout.readline())
            procs.append((" ".join(flags), label, p))

    def run(p):
        p.stdin.write("round\n")
        p.stdin.flush()
        r = json.loads(p.stdout.readline())
        return r["qps"], r.get("cpu_qps"), r["recall@10"]

    for _, _, p in procs:
        run(p)  # warm-up
    qps = [[] for _ in procs]
    cpu = [[] for _ in procs]
    recall = [None] * len(procs)
    for r in range(rounds):
        order = list(range(len(procs)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            q, c, recall[i] = run(procs[i][2])
            qps[i].append(q)
            cpu[i].append(c)
    for i in range(0, len(procs), 2):
        ratios = [b / a for a, b in zip(qps[i], qps[i + 1])]
        line = (f"{procs[i][0]}: A {statistics.median(qps[i]):,.0f} QPS (recall {recall[i]}), "
                f"B {statistics.median(qps[i + 1]):,.0f} QPS (recall {recall[i + 1]}), "
                f"B/A median {statistics.median(ratios):.3f} over {rounds} rounds")
        if None not in cpu[i] + cpu[i + 1]:
            # Queries per CPU second: what other processes on the cores do not count in.
            cpu_ratios = [b / a for a, b in zip(cpu[i], cpu[i + 1])]
            line += (f"; per CPU second A {statistics.median(cpu[i]):,.0f}, "
                     f"B {statistics.median(cpu[i + 1]):,.0f}, "
                     f"B/A median {statistics.median(cpu_ratios):.3f}")
        print(line)
    for _, _, p in procs:
        p.stdin.close()
        p.wait()


if __name__ == "__main__":
    main()
