# Sourced by the scripts: finds a JDK >= CLIP_MIN_JDK and exports JAVA_HOME, CLIP_ROOT and CLIP_JVM_FLAGS.
# Order: $JAVA_HOME, then /usr/lib/jvm/*, then java on PATH.

# The minimum JDK: the compiler's release (pom.xml); README.md says the same (MinimumJdkTest checks all three).
CLIP_MIN_JDK=25
CLIP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CLIP_ROOT
CLIP_JVM_FLAGS="--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Djava.awt.headless=true"
# Linux: the heap on transparent huge pages where the kernel offers them (madvise mode), so that the
# hundreds of MB a model load or a batch writes into fresh heap take 2 MB page faults, not 4 KB ones
# (a ViT-B/32 load spent most of its time in page faults without it; bench/RESULTS.md).
if [ "$(uname -s)" = Linux ]; then CLIP_JVM_FLAGS="$CLIP_JVM_FLAGS -XX:+UseTransparentHugePages"; fi
export CLIP_JVM_FLAGS
# Added by scripts/clip for the one-shot commands (all but serve, train and demo: they load a model, use
# it once and exit): the serial collector. G1 grows its heap under a load's burst of large short-lived
# arrays (the checkpoint's tensors, consumed one by one) to more than twice the live set, and keeps
# it; the serial heap stays near the live set and runs no concurrent GC threads. A young generation of
# 64 MB (the default is a third of the initial heap, ~120 MB on a 23 GB machine): its eden is touched
# whole every cycle, so it is resident; a load's short-lived tensors and a forward's scratch fit it, and
# the larger ones go to the old generation either way. Peak RSS of one `clip embed` of ViT-B/32 from its
# F16 TorchScript archive (checkpoint read lazily, bench/RESULTS.md, `scripts/bench load`): G1 about
# 2.4 GB before lazy reading; serial about 0.94 GB (F32) and 0.66 GB (--precision bf16), with -Xmn64m
# about 0.90 and 0.61 GB; PyTorch 1.11 GB. A heap limit would fail larger models or batches.
CLIP_CLI_JVM_FLAGS="-XX:+UseSerialGC -Xmn64m"
export CLIP_CLI_JVM_FLAGS
# Added by scripts/clip for the long-running commands (serve, train, demo) and by scripts/bench: C2's
# compile thresholds scaled by 0.01 for clipj's per-forward methods (org.clipj.JitThresholds.LATENCY_FLAGS). By
# default C2 compiles a method after 5,000 calls: a model's per-request methods after thousands of
# requests, its per-layer ones after hundreds, and each compilation then lands in a live request
# (10-60 ms of a compiler thread on one of 2 cores); scaled, a warm-up of about 60 calls (Clip.warmUp,
# serve's own) compiles them all first. bench/RESULTS.md, tail latency.
# Only the per-forward methods (model layer, Clip API, the CPU backend's dispatch and checks): the op kernels
# reach C2 in a few forwards anyway, and scaled they compile before their profiles settle and their Vector
# API code stays boxed (48 MB of FloatVector temporaries per image b1 forward, G1 pauses; run P).
CLIP_LATENCY_JVM_FLAGS="-XX:CompileCommand=quiet -XX:CompileCommand=CompileThresholdScaling,org.clipj.model.*::*,0.01 \
-XX:CompileCommand=CompileThresholdScaling,org.clipj.Clip*::*,0.01 \
-XX:CompileCommand=CompileThresholdScaling,org.clipj.runtime.cpu.CpuBackend::*,0.01 \
-XX:CompileCommand=CompileThresholdScaling,org.clipj.runtime.OpChecks::*,0.01"
export CLIP_LATENCY_JVM_FLAGS

clip_java_feature() { # prints the feature version of the JDK at $1 (0 when not a JDK)
  local v
  [ -x "$1/bin/java" ] && [ -x "$1/bin/javac" ] || { echo 0; return; }
  v=$("$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}

clip_find_jdk() {
  local candidate
  for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/* \
      "$(dirname "$(dirname "$(readlink -f "$(command -v javac 2>/dev/null || echo /nonexistent)")")")"; do
    [ -n "$candidate" ] && [ -d "$candidate" ] || continue
    if [ "$(clip_java_feature "$candidate")" -ge "$CLIP_MIN_JDK" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! JAVA_HOME="$(clip_find_jdk)"; then
  cat >&2 <<MSG
error: clipj needs a JDK $CLIP_MIN_JDK or newer (FFM, the Vector API incubator module).
  Looked at \$JAVA_HOME, /usr/lib/jvm/*, and javac on PATH; none is >= $CLIP_MIN_JDK.
  Install one, e.g. on Debian/Ubuntu:  apt-get install temurin-25-jdk  (Adoptium repository)
  or openjdk-25-jdk where your distribution has it, then set JAVA_HOME to it.
MSG
  exit 2
fi
export JAVA_HOME
export PATH="$JAVA_HOME/bin:$PATH"

# Runs the Maven wrapper (it fetches Maven itself on first use) with the chosen JDK.
clip_mvn() {
  (cd "$CLIP_ROOT" && ./mvnw -B -ntp "$@")
}
