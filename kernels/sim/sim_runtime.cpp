// sim_runtime.cpp: the simulator's runtime. Kernel registry, the per-block fiber scheduler
// (barriers, warp collectives, deadlock and divergence detection), and the plain-C entry points
// that org.clipj.cuda.SimCudaDriver binds through FFM: sim_launch, sim_malloc/sim_free, sim_gemm,
// sim_last_error, sim_kernel_params.
//
// Fibers: each thread of a block is a fiber with its own stack. On x86-64 a fiber switch is a
// 14-instruction stack swap (clip_sim_switch below); elsewhere it is ucontext's swapcontext.
// A fiber runs until it reaches __syncthreads, a warp collective, or the end of the kernel, then
// yields to the scheduler, which resumes the next runnable fiber in FIFO order: deterministic.
#include "cuda_sim.h"
#include "sim_registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <deque>
#include <map>
#include <string>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#define SIM_EXPORT extern "C" __attribute__((visibility("default")))

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace {

struct KernelEntry {
    void* kernel;
    clip_sim_launcher launcher;
    std::vector<int> paramSizes;
};

std::map<std::string, KernelEntry>& registry() {
    static std::map<std::string, KernelEntry> kernels;
    return kernels;
}

thread_local std::string lastError;

void setError(const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lastError = buf;
}

#if defined(__x86_64__)
extern "C" void clip_sim_switch(void** saveSp, void* newSp);
asm(R"(
.text
.p2align 4
.hidden clip_sim_switch
.globl clip_sim_switch
.type clip_sim_switch,@function
clip_sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size clip_sim_switch, .-clip_sim_switch
)");
#endif

constexpr size_t STACK_BYTES = 256 * 1024;
constexpr size_t GUARD_BYTES = 4096;
constexpr int MAX_THREADS = 1024;

enum class State { RUNNABLE, BARRIER, WARP, DONE };

struct Fiber {
    char* stack = nullptr; // lowest address of the mapping; the first page is a guard
#if defined(__x86_64__)
    void* sp = nullptr;
#else
    ucontext_t context;
#endif
    uint3 tid;
    int lane = 0, warp = 0;
    State state = State::RUNNABLE;
    // the warp collective this fiber waits in
    int collective = 0; // 0 shuffle, 1 vote
    unsigned mask = 0;
    unsigned long long value = 0;
    int mode = 0, arg = 0, width = 32;
    unsigned long long result = 0;
};

struct Block {
    std::vector<Fiber> fibers;
    int count = 0;
    int current = -1;
    int atBarrier = 0;
    int done = 0;
    unsigned warpArrived[MAX_THREADS / 32]; // lanes of each warp waiting in a collective
    unsigned warpDone[MAX_THREADS / 32];    // lanes of each warp that have exited
    bool faulted = false;
    std::deque<int> runnable;
#if defined(__x86_64__)
    void* schedulerSp = nullptr;
#else
    ucontext_t scheduler;
#endif
    void* kernel = nullptr;
    clip_sim_launcher launcher = nullptr;
    void** params = nullptr;
    std::vector<char> dynamicShared;
    void* dynamicSharedAligned = nullptr;
};

thread_local Block* tlBlock = nullptr;

void yieldToScheduler(Block* b) {
    Fiber& f = b->fibers[b->current];
#if defined(__x86_64__)
    clip_sim_switch(&f.sp, b->schedulerSp);
#else
    swapcontext(&f.context, &b->scheduler);
#endif
}

void fault(Block* b, const char* fmt, ...) {
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!b->faulted) {
        Fiber& f = b->fibers[b->current];
        setError("%s (block (%u,%u,%u), thread (%u,%u,%u))", buf, blockIdx.x, blockIdx.y, blockIdx.z, f.tid.x, f.tid.y, f.tid.z);
    }
    b->faulted = true;
}

void fiberMain() {
    Block* b = tlBlock;
    b->launcher(b->kernel, b->params);
    Fiber& f = b->fibers[b->current];
    f.state = State::DONE;
    b->warpDone[f.warp] |= 1u << f.lane;
    b->done++;
    yieldToScheduler(b);
    __builtin_unreachable();
}

#if defined(__x86_64__)
extern "C" void clip_sim_fiber_entry() { fiberMain(); }
#else
void fiberEntryUcontext() { fiberMain(); }
#endif

void prepareFiber(Block* b, Fiber& f) {
    if (f.stack == nullptr) {
        void* m = mmap(nullptr, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) { perror("clipkernels_sim: fiber stack mmap"); abort(); }
        mprotect(m, GUARD_BYTES, PROT_NONE);
        f.stack = (char*) m;
    }
#if defined(__x86_64__)
    // Stack image that clip_sim_switch pops: r15 r14 r13 r12 rbx rbp, then the return address
    // (the entry function), then a zero slot so the entry starts with rsp = 8 (mod 16) as after a call.
    // Stack tops are staggered so that the fibers' hot frames do not all map to the same cache sets.
    size_t stagger = ((size_t) (&f - &b->fibers[0]) * 208) % 4096;
    uintptr_t top = ((uintptr_t) f.stack + STACK_BYTES - stagger) & ~(uintptr_t) 15;
    void** sp = (void**) (top - 64);
    for (int i = 0; i < 6; i++) sp[i] = nullptr;
    sp[6] = (void*) &clip_sim_fiber_entry;
    sp[7] = nullptr;
    f.sp = sp;
#else
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack + GUARD_BYTES;
    f.context.uc_stack.ss_size = STACK_BYTES - GUARD_BYTES;
    f.context.uc_link = &b->scheduler;
    makecontext(&f.context, fiberEntryUcontext, 0);
#endif
}

// Thread-private state kept across launches: fiber stacks are mapped once per OS thread and
// unmapped when the thread ends.
struct Pool {
    Block* block = nullptr;
    ~Pool() {
        if (block == nullptr) return;
        for (Fiber& f : block->fibers)
            if (f.stack != nullptr) munmap(f.stack, STACK_BYTES);
        delete block;
    }
};
thread_local Pool tlPool;

Block* pool() {
    if (tlPool.block == nullptr) {
        tlPool.block = new Block();
        tlPool.block->fibers.resize(MAX_THREADS);
    }
    return tlPool.block;
}

unsigned existingLanes(Block* b, int warp) {
    int lanes = b->count - warp * 32;
    return lanes >= 32 ? 0xffffffffu : ((1u << lanes) - 1u);
}

// Runs one block to completion; false on a fault (lastError says which).
bool runBlock(Block* b) {
    b->atBarrier = 0;
    b->done = 0;
    b->runnable.clear();
    for (int w = 0; w < (b->count + 31) / 32; w++) b->warpArrived[w] = b->warpDone[w] = 0;
    for (int i = 0; i < b->count; i++) {
        Fiber& f = b->fibers[i];
        f.tid = {i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y)};
        f.lane = i % 32;
        f.warp = i / 32;
        f.state = State::RUNNABLE;
        prepareFiber(b, f);
        b->runnable.push_back(i);
    }
    while (!b->runnable.empty() && !b->faulted) {
        int next = b->runnable.front();
        b->runnable.pop_front();
        b->current = next;
        Fiber& f = b->fibers[next];
        threadIdx = f.tid;
#if defined(__x86_64__)
        clip_sim_switch(&b->schedulerSp, f.sp);
#else
        swapcontext(&b->scheduler, &f.context);
#endif
    }
    if (b->faulted) return false;
    if (b->done == b->count) return true;
    // Nothing can run but some threads have not finished: a deadlock.
    int inWarp = 0;
    for (int i = 0; i < b->count; i++) inWarp += b->fibers[i].state == State::WARP;
    if (b->atBarrier > 0)
        setError("__syncthreads reached by %d of %d threads while %d exited and %d wait in a warp collective "
                 "(barrier in divergent code) (block (%u,%u,%u))",
                 b->atBarrier, b->count, b->done, inWarp, blockIdx.x, blockIdx.y, blockIdx.z);
    else
        setError("deadlock: %d of %d threads wait in a warp collective whose other lanes exited or never arrive "
                 "(block (%u,%u,%u))", inWarp, b->count, blockIdx.x, blockIdx.y, blockIdx.z);
    return false;
}

unsigned long long shuffleResult(Block* b, const Fiber& f, unsigned participants) {
    int lane = f.lane;
    int width = f.width;
    int base = (lane / width) * width;
    int src;
    switch (f.mode) {
        case 0: src = base + (f.arg & (width - 1)); break;
        case 1: src = lane ^ f.arg; if (src >= base + width) src = lane; break;
        case 2: src = lane + f.arg; if (src >= base + width) src = lane; break;
        default: src = lane - f.arg; if (src < base) src = lane; break;
    }
    if (src < 0 || src > 31 || !(participants & (1u << src))) src = lane;
    return b->fibers[f.warp * 32 + src].value;
}

// Called by a fiber that has recorded its collective: completes the collective once every lane of
// its mask waits in one, else yields until the last lane arrives.
void warpCollective(Block* b, Fiber& f) {
    unsigned mask = f.mask & existingLanes(b, f.warp);
    f.state = State::WARP;
    int first = f.warp * 32;
    if (b->warpDone[f.warp] & mask) {
        fault(b, "warp collective with mask 0x%08x but lane %d already exited", f.mask,
              __builtin_ctz(b->warpDone[f.warp] & mask));
        yieldToScheduler(b);
    }
    unsigned arrived = b->warpArrived[f.warp] |= 1u << f.lane;
    if ((arrived & mask) != mask) {
        yieldToScheduler(b);
        return;
    }
    b->warpArrived[f.warp] = arrived & ~mask;
    unsigned ballot = 0;
    for (int l = 0; l < 32; l++)
        if ((mask & (1u << l)) && b->fibers[first + l].value) ballot |= 1u << l;
    for (int l = 0; l < 32; l++) {
        if (!(mask & (1u << l))) continue;
        Fiber& g = b->fibers[first + l];
        if (g.collective == 0) g.result = shuffleResult(b, g, mask);
        else if (g.mode == 0) g.result = ballot;
        else if (g.mode == 1) g.result = ballot != 0;
        else if (g.mode == 2) g.result = ballot == mask;
        else g.result = 0;
        g.state = State::RUNNABLE;
        if (l != f.lane) b->runnable.push_back(first + l);
    }
    // The completing lane goes last in line, after the lanes it released, to keep FIFO order.
    b->runnable.push_back(f.warp * 32 + f.lane);
    yieldToScheduler(b);
}

Block* currentBlock(const char* what) {
    Block* b = tlBlock;
    if (b == nullptr || b->current < 0) {
        fprintf(stderr, "clipkernels_sim: %s called outside a simulated kernel\n", what);
        abort();
    }
    return b;
}

} // namespace

extern "C" void clip_sim_syncthreads(void) {
    Block* b = currentBlock("__syncthreads");
    Fiber& f = b->fibers[b->current];
    f.state = State::BARRIER;
    if (++b->atBarrier == b->count) {
        b->atBarrier = 0;
        for (int i = 0; i < b->count; i++) {
            b->fibers[i].state = State::RUNNABLE;
            b->runnable.push_back(i);
        }
    }
    yieldToScheduler(b);
}

extern "C" unsigned long long clip_sim_shfl(unsigned mask, unsigned long long bits, int mode, int arg, int width) {
    Block* b = currentBlock("__shfl_sync");
    Fiber& f = b->fibers[b->current];
    if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
        fault(b, "shuffle width %d is not a power of two in [1, 32]", width);
        yieldToScheduler(b);
    }
    f.collective = 0;
    f.mask = mask;
    f.value = bits;
    f.mode = mode;
    f.arg = arg;
    f.width = width;
    warpCollective(b, f);
    return b->fibers[b->current].result;
}

extern "C" unsigned clip_sim_vote(unsigned mask, int predicate, int mode) {
    Block* b = currentBlock("warp vote");
    Fiber& f = b->fibers[b->current];
    f.collective = 1;
    f.mask = mask;
    f.value = predicate != 0;
    f.mode = mode;
    warpCollective(b, f);
    return (unsigned) b->fibers[b->current].result;
}

extern "C" unsigned clip_sim_activemask(void) {
    Block* b = currentBlock("__activemask");
    int warp = b->fibers[b->current].warp;
    unsigned m = 0;
    for (int l = 0; l < 32; l++)
        if ((existingLanes(b, warp) & (1u << l)) && b->fibers[warp * 32 + l].state != State::DONE) m |= 1u << l;
    return m;
}

extern "C" void* clip_sim_dynamic_shared(void) {
    return currentBlock("dynamic shared memory")->dynamicSharedAligned;
}

extern "C" void clip_sim_trap(const char* why) {
    Block* b = currentBlock("__trap");
    fault(b, "%s", why);
    yieldToScheduler(b);
}

extern "C" void clip_sim_register(const char* name, void* kernel, clip_sim_launcher launcher, int paramCount,
                                  const int* paramSizes) {
    registry()[name] = KernelEntry{kernel, launcher, std::vector<int>(paramSizes, paramSizes + paramCount)};
}

SIM_EXPORT const char* sim_last_error(void) { return lastError.c_str(); }

// Number of parameters of kernel `name` (their byte sizes written to sizes[0..max)), or -1 if unknown.
SIM_EXPORT int sim_kernel_params(const char* name, int* sizes, int max) {
    auto it = registry().find(name);
    if (it == registry().end()) return -1;
    const std::vector<int>& s = it->second.paramSizes;
    for (int i = 0; i < (int) s.size() && i < max; i++) sizes[i] = s[i];
    return (int) s.size();
}

SIM_EXPORT int sim_kernel_count(void) { return (int) registry().size(); }

// Returns 0 on success, 1 for an unknown kernel, 2 for an invalid configuration, 3 for a fault
// inside the kernel (barrier divergence, deadlock, __trap); sim_last_error() says which.
SIM_EXPORT int sim_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                          unsigned bz, unsigned sharedBytes, void** params) {
    auto it = registry().find(name);
    if (it == registry().end()) {
        setError("no kernel named '%s' in the simulator library", name);
        return 1;
    }
    unsigned long long threads = (unsigned long long) bx * by * bz;
    if (gx == 0 || gy == 0 || gz == 0 || threads == 0 || threads > (unsigned long long) MAX_THREADS) {
        setError("invalid launch of %s: grid (%u,%u,%u), block (%u,%u,%u) (at most %d threads per block)", name, gx,
                 gy, gz, bx, by, bz, MAX_THREADS);
        return 2;
    }
    if (tlBlock != nullptr) {
        setError("sim_launch of %s from inside a simulated kernel", name);
        return 2;
    }
    Block* b = pool();
    b->count = (int) threads;
    b->kernel = it->second.kernel;
    b->launcher = it->second.launcher;
    b->params = params;
    b->faulted = false;
    // Dynamic shared memory starts as 0xff bytes (NaN floats) so reads before writes show up.
    size_t need = (size_t) sharedBytes + 128;
    if (b->dynamicShared.size() < need) b->dynamicShared.resize(need);
    b->dynamicSharedAligned = (void*) (((uintptr_t) b->dynamicShared.data() + 127) & ~(uintptr_t) 127);
    memset(b->dynamicSharedAligned, 0xff, sharedBytes);
    gridDim = dim3(gx, gy, gz);
    blockDim = dim3(bx, by, bz);
    tlBlock = b;
    bool ok = true;
    for (unsigned z = 0; z < gz && ok; z++)
        for (unsigned y = 0; y < gy && ok; y++)
            for (unsigned x = 0; x < gx && ok; x++) {
                blockIdx = {x, y, z};
                ok = runBlock(b);
            }
    b->current = -1;
    tlBlock = nullptr;
    if (!ok) {
        std::string why = lastError;
        setError("kernel %s: %s", name, why.c_str());
        return 3;
    }
    return 0;
}

// Device memory of the simulator is host memory, 256-byte aligned like cudaMalloc's.
SIM_EXPORT void* sim_malloc(size_t bytes) {
    void* p = nullptr;
    if (posix_memalign(&p, 256, bytes == 0 ? 256 : bytes) != 0) return nullptr;
    return p;
}

SIM_EXPORT void sim_free(void* p) { free(p); }

namespace {
// Element types of sim_gemm, as org.clipj.cuda.Blas.Type's ordinals: 0 F32, 1 F16, 2 BF16.
float loadAs(const void* base, int type, size_t i) {
    if (type == 0) return ((const float*) base)[i];
    unsigned short bits = ((const unsigned short*) base)[i];
    return type == 1 ? clip_sim_f16_bits_to_f32(bits) : clip_sim_bf16_bits_to_f32(bits);
}
void storeAs(void* base, int type, size_t i, float v) {
    if (type == 0) ((float*) base)[i] = v;
    else ((unsigned short*) base)[i] = type == 1 ? clip_sim_f32_to_f16_bits(v) : clip_sim_f32_to_bf16_bits(v);
}
} // namespace

// Row-major strided-batched GEMM with an optional bias epilogue, the contract of org.clipj.cuda.Blas:
//   C[b] (m, n) = alpha * op(A[b]) (m, k) @ op(B[b]) (k, n) + beta * C[b] + bias (n), broadcast over rows
// op(X) = X^T when transX. lda/ldb/ldc are row strides of the matrices as stored; stride* are the
// element offsets between batch entries. beta == 0 never reads C (as cuBLAS); bias may be null.
// Products accumulate in F32, in k order.
SIM_EXPORT int sim_gemm(int transA, int transB, int m, int n, int k, float alpha, const void* a, int aType, long lda,
                        long strideA, const void* b, int bType, long ldb, long strideB, float beta, void* c, int cType,
                        long ldc, long strideC, const void* bias, int biasType, int batch) {
    if (m < 0 || n < 0 || k < 0 || batch < 0) {
        setError("sim_gemm: negative size m=%d n=%d k=%d batch=%d", m, n, k, batch);
        return 1;
    }
    std::vector<float> opA((size_t) m * k), opBt((size_t) n * k);
    for (int bi = 0; bi < batch; bi++) {
        const char* pa = (const char*) a;
        const char* pb = (const char*) b;
        size_t aEl = aType == 0 ? 4 : 2, bEl = bType == 0 ? 4 : 2;
        const void* ab = pa + (size_t) bi * strideA * aEl;
        const void* bb = pb + (size_t) bi * strideB * bEl;
        void* cb = (char*) c + (size_t) bi * strideC * (cType == 0 ? 4 : 2);
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++)
                opA[(size_t) i * k + p] = loadAs(ab, aType, transA ? (size_t) p * lda + i : (size_t) i * lda + p);
        for (int j = 0; j < n; j++)
            for (int p = 0; p < k; p++)
                opBt[(size_t) j * k + p] = loadAs(bb, bType, transB ? (size_t) j * ldb + p : (size_t) p * ldb + j);
        for (int i = 0; i < m; i++) {
            const float* ra = &opA[(size_t) i * k];
            for (int j = 0; j < n; j++) {
                const float* rb = &opBt[(size_t) j * k];
                float acc = 0.0f;
                for (int p = 0; p < k; p++) acc += ra[p] * rb[p];
                size_t ci = (size_t) i * ldc + j;
                float v = alpha * acc;
                if (beta != 0.0f) v += beta * loadAs(cb, cType, ci);
                if (bias != nullptr) v += loadAs(bias, biasType, j);
                storeAs(cb, cType, ci, v);
            }
        }
    }
    return 0;
}
