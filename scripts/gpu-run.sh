#!/usr/bin/env bash
# gpu-bundle/run.sh (template: scripts/gpu-run.sh, copied by scripts/gpu-bundle). Runs on the GPU machine,
# from the repository root: `gpu-bundle/run.sh`. Needs no JDK and no network: the bundle has a JRE.
#   1. the JUnit tests tagged `gpu` (panama binding; each class skips with its reason where a piece is missing)
#   2. the GPU benchmarks (every main class listed in benches.txt; JSON lines, suite "gpu"): GpuLaunchBench (launch,
#      graph, cuBLASLt, upload) and ClipGpuBench (every op at ViT-B/32's shapes with TFLOP/s or GB/s and the fraction
#      of the device's peak, the encoders at batch 1 and 256, a training step at batch 256)
#   3. the same workloads in PyTorch (peer.py) when python3 with a CUDA torch is present
# and writes $OUT/report.json (plus the raw logs and JUnit XML under $OUT): each clipj row beside the peer's row of the
# same name, with speedup (> 1: clipj better; time: peer/clipj, rate: clipj/peer). Budget: under 8 minutes in all
# (CLIP_BUNDLE_SECONDS, default 440; a step that finds less than 10 s left still gets 10): each step's timeout is
# cut to what is left.
# The tests run in debug mode (clip.cuda.sync=true); "ok" is false when any test or test class failed or
# aborted. Without a GPU it stops at once: one line on stderr, {"device": null, "error": ..., "ok": false}, exit 2.
set -uo pipefail
B="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$B/out}"
mkdir -p "$OUT"
start=$SECONDS
BUDGET="${CLIP_BUNDLE_SECONDS:-440}"
# A step's timeout: its own cap, or what is left of the budget when that is less (at least 10 s).
cap() { local left=$((BUDGET - (SECONDS - start))); [ "$1" -lt "$left" ] && echo "$1" || echo $((left > 10 ? left : 10)); }
# No GPU: one clear line and a report that says so, at once (nothing else here can run).
no_gpu() {
    printf '{\n  "device": null,\n  "error": "%s",\n  "ok": false,\n  "seconds": %d\n}\n' "$1" $((SECONDS - start)) > "$OUT/report.json"
    echo "gpu-bundle: $1 (report: $OUT/report.json)" >&2
    exit 2
}
command -v nvidia-smi > /dev/null || no_gpu "no NVIDIA GPU here: nvidia-smi not found"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/nvidia-smi.txt" 2>&1 \
    || no_gpu "no NVIDIA GPU here: nvidia-smi failed: $(head -1 "$OUT/nvidia-smi.txt" | tr -d '"\\')"
[ -s "$OUT/nvidia-smi.txt" ] || no_gpu "no NVIDIA GPU here: nvidia-smi lists no device"
# The bundled JRE travels as jre.tar.gz: unpack it once per machine.
JRE="${TMPDIR:-/tmp}/clipj-jre-$(cksum < "$B/jre.tar.gz" 2>/dev/null | cut -d' ' -f1)"
if [ -f "$B/jre.tar.gz" ] && [ ! -x "$JRE/jre/bin/java" ]; then
    mkdir -p "$JRE" && tar -C "$JRE" -xzf "$B/jre.tar.gz"
fi
JAVA="$JRE/jre/bin/java"
[ -x "$JAVA" ] || JAVA="$(command -v java || echo java)"
FLAGS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Djava.awt.headless=true -Xmx16g)
SHARED=""
for s in "$B/../shared" "$B/../../shared"; do [ -d "$s" ] && SHARED="$(cd "$s" && pwd)" && break; done
CP="$(find "$B/lib" -name '*.jar' | sort | tr '\n' ':')"
for t in "$B"/tests/*/; do CP="$CP${t%/}:"; done
CP="${CP%:}"

device="$(head -1 "$OUT/nvidia-smi.txt" | tr -d '"\\')"

# Debug mode first (clip.cuda.sync=true): every launch is synchronized and checked, so a fault names its kernel.
echo "== gpu tests (clip.cuda.sync=true)" >&2
timeout "$(cap 240)" "$JAVA" "${FLAGS[@]}" -Dclip.cuda.binding=panama -Dclip.cuda.sync=true ${SHARED:+-Dclip.shared="$SHARED"} \
    -jar "$B/junit-platform-console-standalone.jar" execute --disable-banner --details=tree \
    --class-path "$CP" --scan-class-path --include-tag gpu --reports-dir "$OUT/junit" > "$OUT/junit.txt" 2>&1
junit_rc=$?
count() { sed -nE "s/^\[ *([0-9]+) $1 *\]$/\1/p" "$OUT/junit.txt" | head -1; }

echo "== gpu benchmarks" >&2
: > "$OUT/bench-clipj.jsonl"
while read -r bench; do
    [ -n "$bench" ] || continue
    timeout "$(cap 200)" "$JAVA" "${FLAGS[@]}" -cp "$CP" "$bench" >> "$OUT/bench-clipj.jsonl" 2>> "$OUT/bench-clipj.err" \
        || echo "{\"suite\":\"gpu\",\"name\":\"$bench\",\"error\":\"exit $? (124: timed out)\"}" >> "$OUT/bench-clipj.jsonl"
done < "$B/benches.txt"

: > "$OUT/bench-peer.jsonl"
if command -v python3 >/dev/null && python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "== pytorch peer" >&2
    timeout "$(cap 150)" python3 "$B/peer.py" > "$OUT/bench-peer.jsonl" 2> "$OUT/bench-peer.err" \
        || echo "{\"suite\":\"gpu\",\"name\":\"peer.py\",\"error\":\"exit $? (124: timed out)\"}" >> "$OUT/bench-peer.jsonl"
fi

join_lines() { grep -h '^{' "$1" | paste -sd, -; }
found="$(count 'tests found')"; ok="$(count 'tests successful')"; failed="$(count 'tests failed')"; skipped="$(count 'tests skipped')"
aborted="$(count 'tests aborted')"; classes_failed="$(count 'containers failed')"
# A test class whose @BeforeAll threw (a missing library, a device fault) is a failure, not a disappearance.
junit_ok=true
[ "$junit_rc" -eq 0 ] && [ "${failed:-0}" -eq 0 ] && [ "${aborted:-0}" -eq 0 ] && [ "${classes_failed:-0}" -eq 0 ] \
    && [ "${found:-0}" -gt 0 ] || junit_ok=false
cat > "$OUT/report.json" <<JSON
{
  "device": "$device",
  "bundle": "$(cat "$B/VERSION" 2>/dev/null)",
  "ok": $junit_ok,
  "junit": {"exit": $junit_rc, "found": ${found:-0}, "successful": ${ok:-0}, "failed": ${failed:-0},
            "skipped": ${skipped:-0}, "aborted": ${aborted:-0}, "classes_failed": ${classes_failed:-0}},
  "clipj": [$(join_lines "$OUT/bench-clipj.jsonl")],
  "peer": [$(join_lines "$OUT/bench-peer.jsonl")],
  "seconds": $((SECONDS - start))
}
JSON
# Pair each clipj benchmark with the peer's figure of the same name and unit (when python3 is here to do it), and
# count the rows: "benchmarks": {"clipj", "peer", "paired", "errors"} (errors: rows of either side that failed).
python3 - "$OUT/report.json" <<'PY' 2> "$OUT/report-pairing.err" || true
import json, sys
p = sys.argv[1]
r = json.load(open(p))
peers = {x["name"]: x for x in r["peer"] if "peer" in x}
paired = 0
for x in r["clipj"]:
    q = peers.get(x.get("name"))
    if q and "clipj" in x and q.get("unit") == x.get("unit") and q["peer"] > 0 and x["clipj"] > 0:
        x["peer"], x["peer_name"] = q["peer"], q["peer_name"]
        x["speedup"] = round(x["clipj"] / q["peer"] if x["unit"] in ("TFLOP/s", "GB/s") else q["peer"] / x["clipj"], 3)
        paired += 1
r["benchmarks"] = {"clipj": sum("clipj" in x for x in r["clipj"]), "peer": len(peers), "paired": paired,
                   "errors": sum("error" in x for x in r["clipj"] + r["peer"])}
json.dump(r, open(p, "w"), indent=1)
PY
cat "$OUT/report.json"
echo "== done in $((SECONDS - start)) s; JUnit exit $junit_rc" >&2
exit 0
