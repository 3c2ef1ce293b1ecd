#!/usr/bin/env bash
# clip-runtime/src/main/c/build.sh: compiles the CPU's native BF16 kernels (bf16_gemm.c) with gcc into
# org/clipj/runtime/cpu/<os>-<arch>/libclipcpu_bf16.so, a resource of the clip-runtime jar that
# org.clipj.runtime.cpu.Bf16Gemm extracts and loads when BF16 is asked for. Only linux-x86_64 is built
# (the kernels are AVX512_BF16); elsewhere, or without a gcc that knows -mavx512bf16 (gcc >= 10), the
# library is replaced by a `.missing` marker that says why, and an explicit BF16 request is refused
# with that text. A compile error is an error.
# Usage: build.sh CLASSES-DIR TARGET-DIR
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
classes="$1"
target="$2"
os="$(uname -s | tr 'A-Z' 'a-z')"
arch="$(uname -m)"
platform="$os-$arch"
out="$classes/org/clipj/runtime/cpu/$platform"
lib="$out/libclipcpu_bf16.so"
mkdir -p "$out" "$target/native"
rm -f "$lib.missing"

missing() {
    echo "$1" > "$lib.missing"
    rm -f "$lib"
    echo "libclipcpu_bf16.so not built: $1"
}

if [[ "$platform" != linux-x86_64 ]]; then
    missing "the BF16 kernels are built for linux-x86_64 only (AVX512_BF16); this build ran on $platform"
    exit 0
fi
cc="${CC:-gcc}"
if ! command -v "$cc" >/dev/null 2>&1; then
    missing "no C compiler ($cc) on the build machine"
    exit 0
fi
flags=(-std=c11 -O3 -fPIC -shared -fvisibility=default -Wall -Wextra -Werror
       -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mfma)
if ! echo 'int main(void){return 0;}' | "$cc" -mavx512bf16 -x c - -o "$target/native/probe" 2>/dev/null; then
    missing "$cc does not know -mavx512bf16 (gcc >= 10 does)"
    exit 0
fi
hash="$(cat "$here/build.sh" "$here"/*.c | sha1sum | cut -d' ' -f1)-$("$cc" --version | head -1 | tr ' ' _)"
if [[ -f "$lib" && -f "$target/native/libclipcpu_bf16.sha1" && "$(cat "$target/native/libclipcpu_bf16.sha1")" == "$hash" ]]; then
    echo "libclipcpu_bf16.so up to date"
    exit 0
fi
"$cc" "${flags[@]}" "$here/bf16_gemm.c" -o "$lib.tmp"
mv "$lib.tmp" "$lib"
echo "$hash" > "$target/native/libclipcpu_bf16.sha1"
echo "built $lib"
