"""Shared tail of every `scripts/bench` suite.

Reads benchmark records (one JSON object per line) on stdin, each with suite, name, unit, clipj,
peer, peer_name and optionally extra fields; adds speedup (> 1: clipj better; rate units:
clipj/peer, time and memory units: peer/clipj), device, threads and the CPU as clipj sees it (CPU_JSON from
org.clipj.bench.MachineInfo: model, vector width, FMA datapath, GEMM blocking); prints one JSON line per record on
stdout in DESIGN.md section 13's format and merges them into RESULTS_FILE (a JSON document
keyed by suite and name, so several suites can run on the same day).

Usage: emit.py RESULTS_FILE DEVICE THREADS COMMIT MACHINE CPU_JSON
"""
import json
import os
import sys
import time

LOWER_IS_BETTER = {"ns", "us", "ms", "s", "MB", "p99/p50"}   # times, memory, tail-latency ratios


def main():
    results_file, device, threads, commit, machine = sys.argv[1:6]
    cpu = json.loads(sys.argv[6])
    records = []
    for line in sys.stdin:
        if not line.strip():
            continue
        r = json.loads(line)
        clipj, peer = r.pop("clipj"), r.pop("peer")
        speedup = (peer / clipj) if r["unit"] in LOWER_IS_BETTER else (clipj / peer)
        out = {"suite": r.pop("suite"), "name": r.pop("name"), "unit": r.pop("unit"),
               "clipj": round(clipj, 3), "peer": round(peer, 3), "peer_name": r.pop("peer_name"),
               "speedup": round(speedup, 3), "device": device, "threads": int(threads)}
        out.update(r)
        out.update({k: cpu[k] for k in ("cpu_model", "vector_bits", "fma_datapath", "blocking")})
        print(json.dumps(out), flush=True)
        records.append(out)

    doc = {"results": []}
    if os.path.exists(results_file):
        with open(results_file) as f:
            doc = json.load(f)
    fresh = {(r["suite"], r["name"]) for r in records}
    doc["results"] = [r for r in doc["results"] if (r["suite"], r["name"]) not in fresh] + records
    doc.update({"updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit, "machine": machine, "cpu": cpu})
    tmp = results_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, results_file)


if __name__ == "__main__":
    main()
