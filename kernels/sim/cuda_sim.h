// cuda_sim.h: the CUDA device-side surface that clipj kernels use, emulated on the host so the
// same .cu sources compile with g++ (-DCLIP_SIM -x c++) into libclipkernels_sim.so.
//
// Execution model (kernels/sim/sim_runtime.cpp): the blocks of a launch run one after another on
// the launching OS thread; the threads of a block are cooperative fibers that switch only at
// __syncthreads and at warp collectives (shuffles, votes, __syncwarp), in a fixed order, so every
// run is deterministic. threadIdx/blockIdx/blockDim/gridDim are thread-locals that the scheduler
// sets before it resumes a fiber. `__shared__` is a block-scope `thread_local` (implicitly static):
// Shared memory lives in the simulator's checked arena (sim_runtime.cpp, "Checks"): the build script
// (kernels/build.sh) rewrites, in copies of the sources, `extern __shared__ T name[];` (dynamic shared
// memory) into a pointer to the launch's sharedBytes, and `__shared__ T name[N]...;` (static) into a
// reference to an array that clip_sim_shared_array places in the block's region on first use. Write
// each on a line of its own, one array per declaration (an optional __align__(N) is allowed); the build
// fails on a __shared__ declaration it cannot rewrite.
//
// Faults are reported, not hung on: a __syncthreads that not every thread of the block reaches (or threads
// waiting at different __syncthreads), a warp collective whose mask names a lane that exited or leaves out
// the calling lane or the lane it reads, any other deadlock, an out-of-bounds, misaligned or freed memory
// access (memcheck), a shared-memory race and two blocks writing different values to one global address
// (racecheck) end the launch with an error (sim_launch
// returns 3; the sim driver throws CUDA_ERROR_LAUNCH_FAILED with the reason). Not emulated: inline PTX (asm),
// __constant__ symbols looked up by name, textures, cooperative groups, clusters, tensor-core
// instructions (guard them with #ifdef CLIP_SIM and emulate, as kernels/include/clip_mma.cuh does),
// __syncthreads_count/and/or. The fast-math intrinsics (__expf, ...) are the exact host functions.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __shared__ thread_local
#define __constant__
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __grid_constant__

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};
// The vector types have CUDA's alignment, so a misaligned vector access is the simulator's fault too (memcheck).
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(8))) int2 { int x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
static inline float2 make_float2(float x, float y) { return {x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
static constexpr int warpSize = 32;

// ---- runtime entry points (sim_runtime.cpp); every one of them may switch fibers ----
extern "C" {
void clip_sim_syncthreads(void);
// mode: 0 idx, 1 xor, 2 down, 3 up. Returns the partner lane's 64 bits.
unsigned long long clip_sim_shfl(unsigned mask, unsigned long long bits, int mode, int arg, int width);
// mode: 0 ballot, 1 any, 2 all, 3 syncwarp (result unused).
unsigned clip_sim_vote(unsigned mask, int predicate, int mode);
unsigned clip_sim_activemask(void);
void* clip_sim_dynamic_shared(void);
void* clip_sim_static_shared(const void* site, const char* name, const char* file, int line, size_t bytes, size_t align,
                             size_t elementBytes);
void clip_sim_trap(const char* why);
void clip_sim_atomic_access(void* p, size_t bytes);
}

// A static __shared__ array of type T (e.g. float[32][33]) of the running block; `site` identifies the declaration.
template <typename T>
static inline T* clip_sim_shared_array(const void* site, const char* name, const char* file, int line) {
    return (T*) clip_sim_static_shared(site, name, file, line, sizeof(T), alignof(T), sizeof(std::remove_all_extents_t<T>));
}

static inline void __syncthreads() { clip_sim_syncthreads(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { clip_sim_vote(mask, 1, 3); }
static inline void __threadfence() {}
static inline void __threadfence_block() {}
static inline void __trap() { clip_sim_trap("__trap()"); }
static inline unsigned __activemask() { return clip_sim_activemask(); }

template <typename T>
static inline T clip_sim_shfl_t(unsigned mask, T var, int mode, int arg, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type wider than 64 bits");
    unsigned long long bits = 0;
    memcpy(&bits, &var, sizeof(T));
    bits = clip_sim_shfl(mask, bits, mode, arg, width);
    T out;
    memcpy(&out, &bits, sizeof(T));
    return out;
}
template <typename T> static inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = 32) { return clip_sim_shfl_t(mask, var, 0, srcLane, width); }
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = 32) { return clip_sim_shfl_t(mask, var, 1, laneMask, width); }
template <typename T> static inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) { return clip_sim_shfl_t(mask, var, 2, (int) delta, width); }
template <typename T> static inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) { return clip_sim_shfl_t(mask, var, 3, (int) delta, width); }
static inline unsigned __ballot_sync(unsigned mask, int p) { return clip_sim_vote(mask, p != 0, 0); }
static inline int __any_sync(unsigned mask, int p) { return (int) clip_sim_vote(mask, p != 0, 1); }
static inline int __all_sync(unsigned mask, int p) { return (int) clip_sim_vote(mask, p != 0, 2); }

// ---- atomics: fibers never preempt each other and blocks run one at a time, so plain
// read-modify-write is atomic here; the GCC builtins keep it so if blocks ever run in parallel.
// They are bounds-checked but exempt from racecheck (CLIP_SIM_ATOMIC: not instrumented themselves). ----
#define CLIP_SIM_ATOMIC static inline __attribute__((no_sanitize_thread))
template <typename T> CLIP_SIM_ATOMIC T clip_sim_atomic_add(T* a, T v) { clip_sim_atomic_access(a, sizeof(T)); T old = *a; *a = old + v; return old; }
static inline float atomicAdd(float* a, float v) { return clip_sim_atomic_add(a, v); }
static inline double atomicAdd(double* a, double v) { return clip_sim_atomic_add(a, v); }
static inline int atomicAdd(int* a, int v) { return clip_sim_atomic_add(a, v); }
static inline unsigned atomicAdd(unsigned* a, unsigned v) { return clip_sim_atomic_add(a, v); }
static inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) { return clip_sim_atomic_add(a, v); }
static inline int atomicSub(int* a, int v) { return clip_sim_atomic_add(a, -v); }
static inline unsigned atomicSub(unsigned* a, unsigned v) { return clip_sim_atomic_add(a, 0u - v); }
template <typename T> CLIP_SIM_ATOMIC T clip_sim_atomic_max(T* a, T v) { clip_sim_atomic_access(a, sizeof(T)); T old = *a; if (v > old) *a = v; return old; }
template <typename T> CLIP_SIM_ATOMIC T clip_sim_atomic_min(T* a, T v) { clip_sim_atomic_access(a, sizeof(T)); T old = *a; if (v < old) *a = v; return old; }
static inline int atomicMax(int* a, int v) { return clip_sim_atomic_max(a, v); }
static inline unsigned atomicMax(unsigned* a, unsigned v) { return clip_sim_atomic_max(a, v); }
static inline unsigned long long atomicMax(unsigned long long* a, unsigned long long v) { return clip_sim_atomic_max(a, v); }
static inline int atomicMin(int* a, int v) { return clip_sim_atomic_min(a, v); }
static inline unsigned atomicMin(unsigned* a, unsigned v) { return clip_sim_atomic_min(a, v); }
static inline unsigned long long atomicMin(unsigned long long* a, unsigned long long v) { return clip_sim_atomic_min(a, v); }
template <typename T> CLIP_SIM_ATOMIC T clip_sim_atomic_cas(T* a, T compare, T v) { clip_sim_atomic_access(a, sizeof(T)); T old = *a; if (old == compare) *a = v; return old; }
template <typename T> CLIP_SIM_ATOMIC T clip_sim_atomic_exch(T* a, T v) { clip_sim_atomic_access(a, sizeof(T)); T old = *a; *a = v; return old; }
static inline int atomicCAS(int* a, int c, int v) { return clip_sim_atomic_cas(a, c, v); }
static inline unsigned atomicCAS(unsigned* a, unsigned c, unsigned v) { return clip_sim_atomic_cas(a, c, v); }
static inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long c, unsigned long long v) { return clip_sim_atomic_cas(a, c, v); }
static inline int atomicExch(int* a, int v) { return clip_sim_atomic_exch(a, v); }
static inline unsigned atomicExch(unsigned* a, unsigned v) { return clip_sim_atomic_exch(a, v); }
static inline float atomicExch(float* a, float v) { return clip_sim_atomic_exch(a, v); }

// ---- fast-math intrinsics: the host versions (the GPU ones differ in the last bits) ----
#ifndef __GLIBC__ // glibc already exports these as the plain float functions
static inline float __expf(float x) { return expf(x); }
static inline float __logf(float x) { return logf(x); }
static inline float __log2f(float x) { return log2f(x); }
static inline float __exp2f(float x) { return exp2f(x); }
static inline float __powf(float x, float y) { return powf(x, y); }
static inline float __sinf(float x) { return sinf(x); }
static inline float __cosf(float x) { return cosf(x); }
static inline float __tanhf(float x) { return tanhf(x); }
#endif
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __int_as_float(int x) { float f; memcpy(&f, &x, 4); return f; }
static inline int __float_as_int(float f) { int x; memcpy(&x, &f, 4); return x; }
static inline float __uint_as_float(unsigned x) { float f; memcpy(&f, &x, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned x; memcpy(&x, &f, 4); return x; }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned) x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
template <typename T> static inline T __ldg(const T* p) { return *p; }

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long min(long a, long b) { return a < b ? a : b; }
static inline long max(long a, long b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
static inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }

// ---- bf16 / f16: same bits as CUDA's types, conversions round to nearest even, bit-exact ----
static inline unsigned short clip_sim_f32_to_bf16_bits(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short) ((u >> 16) | 0x40u); // NaN stays NaN (quiet)
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short) (u >> 16);
}
static inline float clip_sim_bf16_bits_to_f32(unsigned short b) { return __uint_as_float((unsigned) b << 16); }

static inline unsigned short clip_sim_f32_to_f16_bits(float f) {
    unsigned u = __float_as_uint(f);
    unsigned sign = (u >> 16) & 0x8000u;
    unsigned absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (unsigned short) (sign | 0x7e00u | ((absu >> 13) & 0x3ffu)); // NaN
    if (absu >= 0x477ff000u) return (unsigned short) (sign | 0x7c00u); // rounds to >= 65520: infinity
    if (absu >= 0x38800000u) { // normal half
        unsigned mant = absu & 0x7fffffu;
        unsigned exp = (absu >> 23) - 112u;
        unsigned h = (exp << 10) | (mant >> 13);
        unsigned rest = mant & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
        return (unsigned short) (sign | h);
    }
    if (absu < 0x33000000u) return (unsigned short) sign; // below half the smallest subnormal: zero
    // subnormal half: value = m * 2^-24 with m in [0, 1024]
    unsigned exp = absu >> 23;
    unsigned mant = (absu & 0x7fffffu) | 0x800000u;
    unsigned shift = 126u - exp; // 14..24 for exp 112..102
    unsigned h = mant >> shift;
    unsigned rest = mant & ((1u << shift) - 1u);
    unsigned half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (h & 1u))) h++;
    return (unsigned short) (sign | h);
}
static inline float clip_sim_f16_bits_to_f32(unsigned short h) {
    unsigned sign = ((unsigned) h & 0x8000u) << 16;
    unsigned exp = ((unsigned) h >> 10) & 0x1fu;
    unsigned mant = (unsigned) h & 0x3ffu;
    if (exp == 0x1fu) return __uint_as_float(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        float v = (float) mant * 5.9604644775390625e-8f; // 2^-24, exact
        return sign ? -v : v;
    }
    return __uint_as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : __x(clip_sim_f32_to_bf16_bits(f)) {}
    operator float() const { return clip_sim_bf16_bits_to_f32(__x); }
};
struct __half {
    unsigned short __x;
    __half() = default;
    __half(float f) : __x(clip_sim_f32_to_f16_bits(f)) {}
    operator float() const { return clip_sim_f16_bits_to_f32(__x); }
};
struct __attribute__((aligned(4))) __nv_bfloat162 { __nv_bfloat16 x, y; };
struct __attribute__((aligned(4))) __half2 { __half x, y; };
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

static inline __nv_bfloat16 __float2bfloat16(float f) { __nv_bfloat16 b; b.__x = clip_sim_f32_to_bf16_bits(f); return b; }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
static inline float __bfloat162float(__nv_bfloat16 b) { return clip_sim_bf16_bits_to_f32(b.__x); }
static inline __half __float2half(float f) { __half h; h.__x = clip_sim_f32_to_f16_bits(f); return h; }
static inline __half __float2half_rn(float f) { return __float2half(f); }
static inline float __half2float(__half h) { return clip_sim_f16_bits_to_f32(h.__x); }
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__float2bfloat16(a), __float2bfloat16(b)}; }
static inline __nv_bfloat162 __float22bfloat162_rn(float2 v) { return __floats2bfloat162_rn(v.x, v.y); }
static inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {__bfloat162float(v.x), __bfloat162float(v.y)}; }
static inline __half2 __floats2half2_rn(float a, float b) { return {__float2half(a), __float2half(b)}; }
static inline __half2 __float22half2_rn(float2 v) { return __floats2half2_rn(v.x, v.y); }
static inline float2 __half22float2(__half2 v) { return {__half2float(v.x), __half2float(v.y)}; }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) { __nv_bfloat16 b; b.__x = x; return b; }
static inline unsigned short __half_as_ushort(__half h) { return h.__x; }
static inline __half __ushort_as_half(unsigned short x) { __half h; h.__x = x; return h; }
