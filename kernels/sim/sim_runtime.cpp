// sim_runtime.cpp: the simulator's runtime. Kernel registry, the per-block fiber scheduler
// (barriers, warp collectives, deadlock and divergence detection), the device-memory arena with its
// checks (memcheck, initcheck, racecheck: see "Checks" below), and the plain-C entry points that
// org.clipj.cuda.SimCudaDriver binds through FFM: sim_launch, sim_malloc/sim_free, sim_mem_usable,
// sim_set_memory_limit, sim_memory_in_use, sim_set_schedule, sim_gemm, sim_last_error, sim_kernel_params.
//
// Fibers: each thread of a block is a fiber with its own stack. On x86-64 a fiber switch is a
// 14-instruction stack swap (clip_sim_switch below); elsewhere it is ucontext's swapcontext.
// A fiber runs until it reaches __syncthreads, a warp collective, or the end of the kernel, then
// yields to the scheduler, which resumes the next runnable fiber: in FIFO order by default
// (deterministic), or reversed or shuffled at every barrier and collective (sim_set_schedule), with
// the blocks of a launch in order, reversed or shuffled, so schedule-dependent results show.
//
// Checks. The kernels' translation units are compiled with GCC's -fsanitize=thread instrumentation, so
// every load and store (a read-modify-write of one location included, which ASan's instrumentation
// would check once) first calls __tsan_{read,write}{1,2,4,8,16,_range}; this file implements those
// callbacks (the runtime itself is not instrumented, and nothing of TSan's own runtime is linked: no
// JVM-hostile signal handlers or shadow mappings). Device memory and every block's shared memory live
// in one reserved arena with a shadow byte per 8 bytes (ASan's scheme, our encoding: 1..8 = that many
// leading bytes addressable, anything else = none), so a check is a range test and a shadow load:
//   memcheck:  an access to a byte outside what was asked for (a buffer's end, the slack up to the
//              caching allocator's size class or the 256-byte granule, a freed or cached block, shared
//              memory beyond the launch's dynamic size or a static __shared__ array's size) ends the
//              launch with the kernel, the block, the thread, the address and the element offset;
//   initcheck: fresh allocations (and blocks the caching allocator hands out again, sim_mem_usable),
//              dynamic shared memory and static shared arrays are filled with 0xff bytes at every
//              block start: NaN as F32, BF16 and F16, -1 as an integer; and a second shadow keeps one bit
//              per byte of device memory, set by every write (kernel stores, uploads, memsets, copies,
//              GEMM outputs: sim_mark_written), so a kernel's read of global memory never written since
//              it was allocated or handed out again, or of shared memory that no thread of the block
//              has written, ends the launch;
//   racecheck: every 2-byte granule of shared memory remembers its last writer and two last readers
//              with the barrier interval and the warp's collective count at the access; a write and
//              another thread's read or write of the same word in one barrier interval, not ordered
//              by a warp collective of their warp, ends the launch naming both threads. Between blocks:
//              every 2-byte granule of device memory remembers the block (a stamp unique to each block
//              run) that last wrote it; a plain write to a granule another block of the same launch wrote
//              is a write-write race between blocks, reported when the block ends if the two blocks
//              wrote different values (the same value, as a flag every block may set, is benign);
//   alignment: a load or store of a 2-, 4-, 8- or 16-byte type (float4 included: cuda_sim.h gives the
//              vector types CUDA's alignment) at an address not a multiple of its size ends the launch,
//              as the GPU's "misaligned address";
//   freed memory stays poisoned in a quarantine (the last QUARANTINE_BYTES freed) before its span is
//              reused, so a stale pointer is reported as a use after free, not read as a new buffer.
// Accesses to the stack, thread-locals and constant tables fall outside the arena and are not checked.
#include "cuda_sim.h"
#include "sim_registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <random>
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


// ---------------------------------------------------------------- the arena: device and shared memory
// One reserved range (MAP_NORESERVE: pages cost memory only once touched) holds every device allocation
// and every OS thread's shared-memory region, each span starting on a page and followed by at least
// SPAN_REDZONE poisoned bytes; the shadow range has one byte per 8 arena bytes (untouched shadow reads 0:
// not addressable). Freed spans are returned to the kernel (MADV_DONTNEED) and reused by size.
constexpr uint8_t SHADOW_NONE = 0;    // never allocated, or slack past what was asked for
constexpr uint8_t SHADOW_CACHED = 0xfc; // a block idle in the caching allocator's free lists
constexpr uint8_t SHADOW_FREED = 0xfd;
constexpr size_t PAGE = 4096;
constexpr size_t SPAN_REDZONE = 256;
constexpr size_t QUARANTINE_BYTES = (size_t) 256 << 20;

struct Allocation {
    size_t span;   // bytes reserved, page multiple
    size_t bytes;  // bytes the driver call asked for
    size_t usable; // bytes the current user asked for (sim_mem_usable), <= bytes
    bool device;   // a sim_malloc allocation (not a shared-memory region)
};

struct ArenaState {
    char* base = nullptr;
    size_t size = 0;
    uint8_t* shadow = nullptr;
    uint8_t* written = nullptr; // bit i of byte g: byte 8g + i has been written (initcheck)
    uint32_t* writer = nullptr; // per 2-byte granule: the stamp of the block that last wrote it (racecheck between blocks)
    size_t bump = 0;
    std::multimap<size_t, size_t> freeSpans; // span bytes -> offset
    std::deque<std::pair<size_t, size_t>> quarantine; // freed (offset, span), oldest first: not reused yet
    size_t quarantined = 0;                           // span bytes in the quarantine
    std::map<size_t, Allocation> live;       // offset -> allocation
    size_t inUse = 0;                        // device bytes allocated (256-byte granules)
    size_t limit = 0;                        // 0: no cap
    std::mutex lock;
};
ArenaState gArena;
std::once_flag gArenaOnce;

void arenaInit() {
    std::call_once(gArenaOnce, [] {
        for (size_t size : {(size_t) 1 << 40, (size_t) 1 << 37, (size_t) 1 << 34}) {
            void* a = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (a == MAP_FAILED) continue;
            void* s = mmap(nullptr, size / 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (s == MAP_FAILED) { munmap(a, size); continue; }
            void* w = mmap(nullptr, size / 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (w == MAP_FAILED) { munmap(a, size); munmap(s, size / 8); continue; }
            void* r = mmap(nullptr, size * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (r == MAP_FAILED) { munmap(a, size); munmap(s, size / 8); munmap(w, size / 8); continue; }
            gArena.shadow = (uint8_t*) s;
            gArena.written = (uint8_t*) w;
            gArena.writer = (uint32_t*) r;
            gArena.base = (char*) a;
            gArena.size = size; // set last: checks test offsets against it
            return;
        }
        perror("clipkernels_sim: cannot reserve the device-memory arena");
        abort();
    });
}

// Shadow of [off, off + n) (off a multiple of 8): addressable, or all `code`.
void shadowSet(size_t off, size_t n, bool addressable, uint8_t code) {
    uint8_t* sh = gArena.shadow + (off >> 3);
    size_t full = n >> 3;
    memset(sh, addressable ? 8 : code, full);
    if (n & 7) sh[full] = addressable ? (uint8_t) (n & 7) : code;
}

inline bool addressable(size_t off, size_t n) {
    const uint8_t* sh = gArena.shadow;
    while (n > 0) {
        size_t lo = off & 7, take = n < 8 - lo ? n : 8 - lo;
        uint8_t s = sh[off >> 3];
        if (s < 1 || s > 8 || lo + take > s) return false;
        off += take;
        n -= take;
    }
    return true;
}

inline bool allWritten(size_t off, size_t n) {
    const uint8_t* w = gArena.written;
    while (n > 0) {
        size_t lo = off & 7, take = n < 8 - lo ? n : 8 - lo;
        unsigned mask = ((1u << take) - 1u) << lo;
        if ((w[off >> 3] & mask) != mask) return false;
        off += take;
        n -= take;
    }
    return true;
}

// Sets (or clears) the written bits of [off, off + n).
void markWritten(size_t off, size_t n, bool written = true) {
    uint8_t* w = gArena.written;
    while (n > 0 && (off & 7) != 0) {
        unsigned bit = 1u << (off & 7);
        w[off >> 3] = written ? (w[off >> 3] | bit) : (w[off >> 3] & ~bit);
        off++;
        n--;
    }
    memset(w + (off >> 3), written ? 0xff : 0, n >> 3);
    off += n & ~(size_t) 7;
    n &= 7;
    for (; n > 0; off++, n--) {
        unsigned bit = 1u << (off & 7);
        w[off >> 3] = written ? (w[off >> 3] | bit) : (w[off >> 3] & ~bit);
    }
}

// A span of at least `bytes` + SPAN_REDZONE bytes; returns its offset. Caller holds the lock.
size_t spanTake(size_t bytes, size_t* spanOut) {
    size_t span = (bytes + SPAN_REDZONE + PAGE - 1) / PAGE * PAGE;
    size_t off;
    auto it = gArena.freeSpans.find(span);
    if (it != gArena.freeSpans.end()) {
        off = it->second;
        gArena.freeSpans.erase(it);
    } else {
        if (gArena.bump + span > gArena.size) return (size_t) -1;
        off = gArena.bump;
        gArena.bump += span;
    }
    *spanOut = span;
    return off;
}

// Frees a span: poisoned, its pages returned, and reusable once it leaves the quarantine (the newest span
// freed always stays there until the next free). Caller holds the lock.
void spanGive(size_t off, size_t span) {
    madvise(gArena.base + off, span, MADV_DONTNEED);
    madvise(gArena.writer + off / 2, span * 2, MADV_DONTNEED);
    shadowSet(off, span, false, SHADOW_FREED);
    markWritten(off, span, false);
    gArena.quarantine.emplace_back(off, span);
    gArena.quarantined += span;
    while (gArena.quarantined > QUARANTINE_BYTES && gArena.quarantine.size() > 1) {
        auto [oldOff, oldSpan] = gArena.quarantine.front();
        gArena.quarantine.pop_front();
        gArena.quarantined -= oldSpan;
        gArena.freeSpans.emplace(oldSpan, oldOff);
    }
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
constexpr unsigned MAX_BLOCK_Z = 64, MAX_GRID_X = 0x7fffffffu, MAX_GRID_YZ = 65535; // the device's launch limits
constexpr size_t MAX_DYNAMIC_SHARED = 227 * 1024; // the H100's opt-in limit per block
constexpr size_t MAX_STATIC_SHARED = 48 * 1024;
constexpr size_t SHARED_REDZONE = 64;             // poisoned bytes between shared arrays
constexpr size_t SHARED_CAPACITY = MAX_DYNAMIC_SHARED + MAX_STATIC_SHARED + 64 * SHARED_REDZONE;

// Scheduling orders (sim_set_schedule): of the fibers released by a barrier or a warp collective,
// and of the blocks of a launch.
enum Order { ORDER_FIFO = 0, ORDER_REVERSE = 1, ORDER_RANDOM = 2 };
int gThreadOrder = ORDER_FIFO, gBlockOrder = ORDER_FIFO;
unsigned long long gSeed = 0;
std::atomic<unsigned long long> gLaunches{0};
std::atomic<uint32_t> gBlockStamps{0}; // one per block run, for racecheck between blocks (0: never written)

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
    const void* barrierSite = nullptr; // the __syncthreads the waiting threads called (divergence check)
    int barrierFirst = -1;             // the first thread waiting there
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
    std::mt19937_64 rng;
    // Shared memory: this OS thread's region in the arena; dynamic at offset 0, static arrays after it.
    char* shared = nullptr;
    size_t sharedOffset = 0; // of the region in the arena
    size_t dynamicBytes = 0; // of this launch
    size_t staticCursor = 0;
    size_t highWater = 0;    // bytes of the region made addressable since the last reset
    struct StaticArray {
        const void* site;
        const char* name;
        const char* file;
        int line;
        size_t offset, bytes, elementBytes;
    };
    std::vector<StaticArray> statics;
    // Racecheck: per 2-byte granule of the region (bf16/f16 elements of different threads may share a
    // 4-byte word), the last write and the two last distinct readers.
    struct Access { uint32_t epoch, warpEpoch; uint16_t thread; };
    struct Word { Access write, read[2]; };
    std::vector<Word> words;
    uint32_t epoch = 0; // barrier intervals on this OS thread (every block start and every barrier)
    uint32_t blockEpoch = 0; // the epoch the running block started in
    uint32_t warpEpoch[MAX_THREADS / 32] = {};
    // Racecheck between blocks: this block's stamp, the first stamp of the launch, and the writes of this block
    // to granules another block of the launch wrote (checked when the block ends: same value or not).
    uint32_t stamp = 0, launchStamp = 0;
    struct Overwrite {
        uintptr_t address;
        size_t bytes;
        std::string before; // the bytes there before this block's write (the other block's value)
        uint32_t otherStamp;
        uint3 thread;
    };
    std::vector<Overwrite> overwrites;
    std::vector<unsigned> order;     // linear block indices of the launch in run order
    std::vector<uint32_t> runStamps; // the stamps of the launch's blocks run so far, in run order (increasing)
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
        {
            std::lock_guard<std::mutex> guard(gArena.lock);
            auto it = gArena.live.find(block->sharedOffset);
            spanGive(block->sharedOffset, it->second.span);
            gArena.live.erase(it);
        }
        delete block;
    }
};
thread_local Pool tlPool;

Block* pool() {
    if (tlPool.block == nullptr) {
        arenaInit();
        Block* b = new Block();
        b->fibers.resize(MAX_THREADS);
        size_t span;
        {
            std::lock_guard<std::mutex> guard(gArena.lock);
            b->sharedOffset = spanTake(SHARED_CAPACITY, &span);
            if (b->sharedOffset == (size_t) -1) { fprintf(stderr, "clipkernels_sim: arena exhausted\n"); abort(); }
            gArena.live[b->sharedOffset] = Allocation{span, SHARED_CAPACITY, SHARED_CAPACITY, false};
        }
        b->shared = gArena.base + b->sharedOffset;
        b->words.resize(SHARED_CAPACITY / 2);
        tlPool.block = b;
    }
    return tlPool.block;
}

// Appends the fibers `ids` to the run queue in the configured order.
void pushReleased(Block* b, int* ids, int n) {
    if (gThreadOrder == ORDER_REVERSE) std::reverse(ids, ids + n);
    else if (gThreadOrder == ORDER_RANDOM) std::shuffle(ids, ids + n, b->rng);
    for (int i = 0; i < n; i++) b->runnable.push_back(ids[i]);
}

// Every block starts with fresh shared memory: addressable exactly for the launch's dynamic size and
// filled with 0xff (initcheck); static arrays are placed as their declarations are first reached.
void resetShared(Block* b) {
    shadowSet(b->sharedOffset, b->highWater, false, SHADOW_NONE);
    shadowSet(b->sharedOffset, b->dynamicBytes, true, 0);
    memset(b->shared, 0xff, b->dynamicBytes);
    b->highWater = b->dynamicBytes;
    b->staticCursor = (b->dynamicBytes + SHARED_REDZONE + 15) / 16 * 16;
    b->statics.clear();
    b->blockEpoch = ++b->epoch;
}

unsigned existingLanes(Block* b, int warp) {
    int lanes = b->count - warp * 32;
    return lanes >= 32 ? 0xffffffffu : ((1u << lanes) - 1u);
}

std::string describeGlobal(size_t off, size_t n);

// Racecheck between blocks, when a block ends: each of its writes to a granule another block of the launch
// wrote must have stored the value that was there (a flag both set), else the result depends on block order.
bool overwritesBenign(Block* b) {
    for (const Block::Overwrite& o : b->overwrites) {
        if (memcmp((const void*) o.address, o.before.data(), o.before.size()) == 0) continue;
        std::string where = describeGlobal(o.address - (uintptr_t) gArena.base, o.bytes);
        auto run = std::lower_bound(b->runStamps.begin(), b->runStamps.end(), o.otherStamp);
        char otherBlock[96] = "a block of a launch running at the same time on another thread";
        if (run != b->runStamps.end() && *run == o.otherStamp) {
            unsigned other = b->order[run - b->runStamps.begin()], gx = gridDim.x, gy = gridDim.y;
            snprintf(otherBlock, sizeof otherBlock, "block (%u,%u,%u) of the same launch", other % gx, (other / gx) % gy,
                     other / (gx * gy));
        }
        setError("racecheck: write-write race between blocks on %s: block (%u,%u,%u) thread (%u,%u,%u) and %s wrote "
                 "different values there without an atomic", where.c_str(), blockIdx.x, blockIdx.y, blockIdx.z, o.thread.x,
                 o.thread.y, o.thread.z, otherBlock);
        return false;
    }
    return true;
}

// Runs one block to completion; false on a fault (lastError says which).
bool runBlock(Block* b) {
    b->atBarrier = 0;
    b->barrierSite = nullptr;
    b->done = 0;
    b->stamp = ++gBlockStamps;
    b->runStamps.push_back(b->stamp);
    b->overwrites.clear();
    b->runnable.clear();
    resetShared(b);
    for (int w = 0; w < (b->count + 31) / 32; w++) b->warpArrived[w] = b->warpDone[w] = 0;
    int ids[MAX_THREADS];
    for (int i = 0; i < b->count; i++) {
        Fiber& f = b->fibers[i];
        f.tid = {i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y)};
        f.lane = i % 32;
        f.warp = i / 32;
        f.state = State::RUNNABLE;
        prepareFiber(b, f);
        ids[i] = i;
    }
    pushReleased(b, ids, b->count);
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
    if (b->done == b->count) return overwritesBenign(b);
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
    if (src < 0 || src > 31 || !(existingLanes(b, f.warp) & (1u << src))) src = lane; // past the block's last thread
    else if (!(participants & (1u << src))) {
        fault(b, "__shfl_sync: lane %d reads lane %d, which its mask 0x%08x does not name (the value is undefined)", lane, src,
              f.mask);
        return f.value;
    }
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
    b->warpEpoch[f.warp]++;
    for (int l = 0; l < 32; l++) {
        const Fiber& g = b->fibers[first + l];
        if ((mask & (1u << l)) && (g.mask & existingLanes(b, f.warp)) != mask) {
            fault(b, "warp collective: lane %d waits with mask 0x%08x but lane %d with mask 0x%08x (every lane named must "
                  "pass the same mask)", f.lane, f.mask, l, g.mask);
            yieldToScheduler(b);
        }
    }
    unsigned ballot = 0;
    for (int l = 0; l < 32; l++)
        if ((mask & (1u << l)) && b->fibers[first + l].value) ballot |= 1u << l;
    int released[32], n = 0;
    for (int l = 0; l < 32; l++) {
        if (!(mask & (1u << l))) continue;
        Fiber& g = b->fibers[first + l];
        if (g.collective == 0) g.result = shuffleResult(b, g, mask);
        else if (g.mode == 0) g.result = ballot;
        else if (g.mode == 1) g.result = ballot != 0;
        else if (g.mode == 2) g.result = ballot == mask;
        else g.result = 0;
        g.state = State::RUNNABLE;
        if (l != f.lane) released[n++] = first + l;
    }
    if (b->faulted) yieldToScheduler(b);
    pushReleased(b, released, n);
    // The completing lane goes last in line, after the lanes it released (FIFO order by default).
    b->runnable.push_back(f.warp * 32 + f.lane);
    yieldToScheduler(b);
}

// A warp collective's mask must name the calling lane (CUDA's rule; the GPU's result is undefined otherwise).
void checkOwnLane(Block* b, const Fiber& f, unsigned mask, const char* what) {
    if (mask & (1u << f.lane)) return;
    fault(b, "%s with mask 0x%08x, which does not name the calling lane %d", what, mask, f.lane);
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
    // The call site tells the barriers apart (cuda_sim.h's __syncthreads is inlined into the kernel).
    const void* site = __builtin_return_address(0);
    if (b->atBarrier == 0) {
        b->barrierSite = site;
        b->barrierFirst = b->current;
    } else if (site != b->barrierSite) {
        const uint3& t = b->fibers[b->barrierFirst].tid;
        fault(b, "__syncthreads in divergent code: this thread waits at a different __syncthreads (code %p) than thread "
              "(%u,%u,%u) (code %p)", site, t.x, t.y, t.z, b->barrierSite);
        yieldToScheduler(b);
    }
    f.state = State::BARRIER;
    if (++b->atBarrier == b->count) {
        b->atBarrier = 0;
        b->epoch++;
        int ids[MAX_THREADS];
        for (int i = 0; i < b->count; i++) {
            b->fibers[i].state = State::RUNNABLE;
            ids[i] = i;
        }
        pushReleased(b, ids, b->count);
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
    checkOwnLane(b, f, mask, "__shfl_sync");
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
    checkOwnLane(b, f, mask, mode == 3 ? "__syncwarp" : "warp vote");
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
    return currentBlock("dynamic shared memory")->shared;
}

extern "C" void* clip_sim_static_shared(const void* site, const char* name, const char* file, int line, size_t bytes,
                                        size_t align, size_t elementBytes) {
    Block* b = currentBlock("static shared memory");
    for (const Block::StaticArray& a : b->statics)
        if (a.site == site) return b->shared + a.offset;
    if (align < 16) align = 16;
    size_t offset = (b->staticCursor + align - 1) / align * align;
    if (offset + bytes - b->dynamicBytes > MAX_STATIC_SHARED + 64 * SHARED_REDZONE || offset + bytes > SHARED_CAPACITY) {
        fault(b, "static shared memory over 48 KiB (array '%s' of %zu bytes at %s:%d)", name, bytes, file, line);
        yieldToScheduler(b);
    }
    const char* slash = strrchr(file, '/');
    b->statics.push_back({site, name, slash ? slash + 1 : file, line, offset, bytes, elementBytes});
    shadowSet(b->sharedOffset + offset, bytes, true, 0);
    memset(b->shared + offset, 0xff, bytes);
    b->staticCursor = offset + bytes + SHARED_REDZONE;
    if (b->staticCursor > b->highWater) b->highWater = b->staticCursor;
    return b->shared + offset;
}

namespace {

// "dynamic shared memory byte 4100 (element 1025 of 4-byte elements)" and the like, for messages.
std::string describeShared(Block* b, size_t so, size_t n) {
    char buf[512];
    for (const Block::StaticArray& a : b->statics) {
        if (so >= a.offset && so < a.offset + a.bytes) {
            snprintf(buf, sizeof buf, "static shared array '%s' (%s:%d, %zu bytes) at byte %zu (element %zu)", a.name, a.file,
                     a.line, a.bytes, so - a.offset, (so - a.offset) / a.elementBytes);
            return buf;
        }
    }
    if (so < b->dynamicBytes || b->statics.empty() || so < b->statics[0].offset) {
        snprintf(buf, sizeof buf, "dynamic shared memory (extern __shared__, %zu bytes in this launch) at byte %zu (index %zu of %zu-byte elements)",
                 b->dynamicBytes, so, so / n, n);
        return buf;
    }
    const Block::StaticArray* before = &b->statics[0];
    for (const Block::StaticArray& a : b->statics)
        if (a.offset <= so && a.offset > before->offset) before = &a;
    snprintf(buf, sizeof buf, "static shared array '%s' (%s:%d, %zu bytes) at byte %zu (element %zu), past its end",
             before->name, before->file, before->line, before->bytes, so - before->offset, (so - before->offset) / before->elementBytes);
    return buf;
}

std::string describeGlobal(size_t off, size_t n) {
    char buf[512];
    std::lock_guard<std::mutex> guard(gArena.lock);
    uint8_t code = gArena.shadow[off >> 3];
    auto it = gArena.live.upper_bound(off);
    if (it != gArena.live.begin()) {
        --it;
        const Allocation& a = it->second;
        size_t at = off - it->first;
        uintptr_t start = (uintptr_t) gArena.base + it->first;
        if (at < a.span && a.device) {
            if (code == SHADOW_CACHED)
                snprintf(buf, sizeof buf, "global memory 0x%lx: byte %zu of a %zu-byte block idle in the caching allocator "
                         "(released: use after free)", (unsigned long) (start + at), at, a.bytes);
            else if (a.usable < a.bytes && at >= a.usable && at < a.bytes)
                snprintf(buf, sizeof buf, "global memory 0x%lx: byte %zu (index %zu of %zu-byte elements) of a %zu-byte buffer at 0x%lx, "
                         "past its end, in the slack of the allocator's %zu-byte block",
                         (unsigned long) (start + at), at, at / n, n, a.usable, (unsigned long) start, a.bytes);
            else if (at >= a.usable)
                snprintf(buf, sizeof buf, "global memory 0x%lx: byte %zu (index %zu of %zu-byte elements) of a %zu-byte buffer at 0x%lx, "
                         "past its end", (unsigned long) (start + at), at, at / n, n, a.usable, (unsigned long) start);
            else
                snprintf(buf, sizeof buf, "global memory 0x%lx: byte %zu (index %zu of %zu-byte elements) of a %zu-byte buffer at 0x%lx",
                         (unsigned long) (start + at), at, at / n, n, a.usable, (unsigned long) start);
            return buf;
        }
    }
    snprintf(buf, sizeof buf, "global memory 0x%lx: %s", (unsigned long) ((uintptr_t) gArena.base + off),
             code == SHADOW_FREED ? "freed memory (use after free)" : "not in any allocation");
    return buf;
}

[[noreturn]] void reportInvalid(Block* b, uintptr_t a, size_t n, bool write) {
    size_t off = a - (uintptr_t) gArena.base;
    std::string where = off - b->sharedOffset < SHARED_CAPACITY ? describeShared(b, off - b->sharedOffset, n) : describeGlobal(off, n);
    fault(b, "memcheck: invalid %s of %zu bytes at %s", write ? "write" : "read", n, where.c_str());
    yieldToScheduler(b);
    __builtin_unreachable();
}

inline bool conflicting(const Block* b, const Block::Access& a, int me, int myWarp) {
    if (a.epoch != b->epoch || a.thread == me) return false;
    // The same warp after a collective of that warp (__syncwarp, a shuffle, a vote) is ordered.
    return !(a.thread / 32 == myWarp && b->warpEpoch[myWarp] != a.warpEpoch);
}

[[noreturn]] void reportRace(Block* b, size_t so, size_t n, const char* hazard, int other, bool write) {
    const uint3& t = b->fibers[other].tid;
    std::string where = describeShared(b, so, n);
    fault(b, "racecheck: %s hazard on %s: this thread %s it and thread (%u,%u,%u) %s it in the same barrier interval "
          "(no __syncthreads or warp collective orders them)", hazard, where.c_str(), write ? "writes" : "reads",
          t.x, t.y, t.z, strstr(hazard, "after-write") ? "wrote" : "read");
    yieldToScheduler(b);
    __builtin_unreachable();
}

void raceCheck(Block* b, size_t so, size_t n, bool write) {
    int me = b->current, warp = me / 32;
    Block::Access now{b->epoch, b->warpEpoch[warp], (uint16_t) me};
    for (size_t w = so >> 1, last = (so + n - 1) >> 1; w <= last; w++) {
        Block::Word& r = b->words[w];
        if (write) {
            if (conflicting(b, r.write, me, warp)) reportRace(b, so, n, "write-after-write", r.write.thread, true);
            for (const Block::Access& rd : r.read)
                if (conflicting(b, rd, me, warp)) reportRace(b, so, n, "write-after-read", rd.thread, true);
            r.write = now;
        } else {
            if (r.write.epoch < b->blockEpoch) {
                std::string where = describeShared(b, so, n);
                fault(b, "initcheck: read of %s, which no thread of this block has written", where.c_str());
                yieldToScheduler(b);
            }
            if (conflicting(b, r.write, me, warp)) reportRace(b, so, n, "read-after-write", r.write.thread, false);
            if (r.read[0].epoch == now.epoch && r.read[0].thread == me) r.read[0] = now;
            else if (r.read[1].epoch == now.epoch && r.read[1].thread == me) r.read[1] = now;
            else { r.read[1] = r.read[0]; r.read[0] = now; }
        }
    }
}

// Racecheck between blocks: stamps [off, off + n) with this block; remembers the write when another block of
// the launch wrote there before (overwritesBenign decides when the block ends).
void recordWriter(Block* b, size_t off, uintptr_t a, size_t n) {
    uint32_t* w = gArena.writer + (off >> 1);
    size_t granules = ((off + n - 1) >> 1) - (off >> 1) + 1;
    uint32_t other = 0;
    for (size_t i = 0; i < granules; i++) {
        if (other == 0 && w[i] >= b->launchStamp && w[i] != b->stamp) other = w[i];
        w[i] = b->stamp;
    }
    if (other != 0) b->overwrites.push_back({a, n, std::string((const char*) a, n), other, b->fibers[b->current].tid});
}

[[noreturn]] void reportMisaligned(Block* b, uintptr_t a, size_t n, bool write) {
    size_t off = a - (uintptr_t) gArena.base;
    std::string where = off - b->sharedOffset < SHARED_CAPACITY ? describeShared(b, off - b->sharedOffset, n) : describeGlobal(off, n);
    fault(b, "memcheck: misaligned %s of %zu bytes at %s (address not a multiple of %zu)", write ? "write" : "read", n,
          where.c_str(), n);
    yieldToScheduler(b);
    __builtin_unreachable();
}

// aligned: the access is of a type whose alignment is its size (the instrumentation's sized, not unaligned, callbacks).
inline void checkAccess(uintptr_t a, size_t n, bool write, bool atomic, bool aligned) {
    size_t off = a - (uintptr_t) gArena.base;
    if (off >= gArena.size || n == 0) return; // stack, thread-locals, constant tables: not checked
    Block* b = tlBlock;
    if (b == nullptr || b->current < 0) return;
    if (!addressable(off, n)) reportInvalid(b, a, n, write);
    if (aligned && (a & (n - 1)) != 0) reportMisaligned(b, a, n, write);
    size_t so = off - b->sharedOffset;
    if (so < SHARED_CAPACITY) {
        if (!atomic) raceCheck(b, so, n, write);
        return;
    }
    if ((!write || atomic) && !allWritten(off, n)) {
        std::string where = describeGlobal(off, n);
        fault(b, "initcheck: %s of %zu bytes at %s, which nothing has written since it was allocated",
              atomic ? "atomic update" : "read", n, where.c_str());
        yieldToScheduler(b);
    }
    if (write) {
        markWritten(off, n);
        if (!atomic) recordWriter(b, off, a, n);
    }
}

} // namespace

// The callbacks of GCC's -fsanitize=thread instrumentation (see "Checks" above).
#define CLIP_SIM_ACCESS_CALLBACKS(size)                                                                                        \
    extern "C" void __tsan_read##size(uintptr_t a) { checkAccess(a, size, false, false, true); }                                \
    extern "C" void __tsan_write##size(uintptr_t a) { checkAccess(a, size, true, false, true); }                                \
    extern "C" void __tsan_unaligned_read##size(uintptr_t a) { checkAccess(a, size, false, false, false); }                     \
    extern "C" void __tsan_unaligned_write##size(uintptr_t a) { checkAccess(a, size, true, false, false); }
CLIP_SIM_ACCESS_CALLBACKS(1)
CLIP_SIM_ACCESS_CALLBACKS(2)
CLIP_SIM_ACCESS_CALLBACKS(4)
CLIP_SIM_ACCESS_CALLBACKS(8)
CLIP_SIM_ACCESS_CALLBACKS(16)
extern "C" void __tsan_read_range(uintptr_t a, size_t n) { checkAccess(a, n, false, false, false); }
extern "C" void __tsan_write_range(uintptr_t a, size_t n) { checkAccess(a, n, true, false, false); }
extern "C" void __tsan_init(void) {}

// Atomics: bounds-checked, never a race (cuda_sim.h's atomics are not instrumented themselves).
extern "C" void clip_sim_atomic_access(void* p, size_t n) { checkAccess((uintptr_t) p, n, true, true, true); }

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
    if (gx == 0 || gy == 0 || gz == 0 || threads == 0 || threads > (unsigned long long) MAX_THREADS || bx > (unsigned) MAX_THREADS
        || by > (unsigned) MAX_THREADS || bz > MAX_BLOCK_Z || gx > MAX_GRID_X || gy > MAX_GRID_YZ || gz > MAX_GRID_YZ) {
        setError("invalid launch of %s: grid (%u,%u,%u), block (%u,%u,%u) (the device allows at most %d threads per block, "
                 "a block of (%d,%d,%u), a grid of (%u,%u,%u), none 0)", name, gx, gy, gz, bx, by, bz, MAX_THREADS,
                 MAX_THREADS, MAX_THREADS, MAX_BLOCK_Z, MAX_GRID_X, MAX_GRID_YZ, MAX_GRID_YZ);
        return 2;
    }
    if (tlBlock != nullptr) {
        setError("sim_launch of %s from inside a simulated kernel", name);
        return 2;
    }
    if (sharedBytes > MAX_DYNAMIC_SHARED) {
        setError("invalid launch of %s: %u bytes of dynamic shared memory (at most %zu per block)", name, sharedBytes,
                 MAX_DYNAMIC_SHARED);
        return 2;
    }
    Block* b = pool();
    b->count = (int) threads;
    b->kernel = it->second.kernel;
    b->launcher = it->second.launcher;
    b->params = params;
    b->faulted = false;
    b->dynamicBytes = sharedBytes;
    b->rng.seed(gSeed * 0x9e3779b97f4a7c15ull + gLaunches.fetch_add(1));
    gridDim = dim3(gx, gy, gz);
    blockDim = dim3(bx, by, bz);
    std::vector<unsigned>& order = b->order;
    order.resize((size_t) gx * gy * gz);
    for (size_t i = 0; i < order.size(); i++) order[i] = (unsigned) i;
    if (gBlockOrder == ORDER_REVERSE) std::reverse(order.begin(), order.end());
    else if (gBlockOrder == ORDER_RANDOM) std::shuffle(order.begin(), order.end(), b->rng);
    // Stamps are taken per block in run order; concurrent launches on other OS threads take theirs in between,
    // which only matters where the two launches write the same memory (a race of its own).
    b->launchStamp = gBlockStamps.load() + 1;
    b->runStamps.clear();
    tlBlock = b;
    bool ok = true;
    for (size_t i = 0; i < order.size() && ok; i++) {
        unsigned linear = order[i];
        blockIdx = {linear % gx, (linear / gx) % gy, linear / (gx * gy)};
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

// Device memory of the simulator: page-aligned spans of the arena (so 256-byte aligned like cudaMalloc's),
// filled with 0xff (initcheck), exactly `bytes` addressable. Null when the memory cap (sim_set_memory_limit)
// or the arena would be exceeded; sim_last_error says so.
SIM_EXPORT void* sim_malloc(size_t bytes) {
    arenaInit();
    size_t n = bytes == 0 ? 1 : bytes;
    size_t charged = (n + 255) / 256 * 256;
    size_t off, span;
    {
        std::lock_guard<std::mutex> guard(gArena.lock);
        if (gArena.limit != 0 && gArena.inUse + charged > gArena.limit) {
            setError("out of memory: %zu bytes asked, %zu of the simulator's %zu-byte cap in use", bytes, gArena.inUse,
                     gArena.limit);
            return nullptr;
        }
        off = spanTake(n, &span);
        if (off == (size_t) -1) {
            setError("out of memory: %zu bytes asked, the simulator's arena of %zu bytes is exhausted", bytes, gArena.size);
            return nullptr;
        }
        gArena.live[off] = Allocation{span, n, n, true};
        gArena.inUse += charged;
    }
    shadowSet(off, span, false, SHADOW_NONE);
    shadowSet(off, n, true, 0);
    memset(gArena.base + off, 0xff, n);
    return gArena.base + off;
}

// Returns 0, or -1 (sim_last_error says why: a double free, or not a pointer sim_malloc returned).
SIM_EXPORT int sim_free(void* p) {
    if (p == nullptr) return 0;
    arenaInit();
    std::lock_guard<std::mutex> guard(gArena.lock);
    size_t off = (char*) p - gArena.base;
    auto it = gArena.live.find(off);
    if (it == gArena.live.end() || !it->second.device) {
        bool freed = off < gArena.size && gArena.shadow[off >> 3] == SHADOW_FREED;
        setError("free of %p: %s", p, freed ? "already freed (double free)" : "not a pointer the allocator returned");
        return -1;
    }
    gArena.inUse -= (it->second.bytes + 255) / 256 * 256;
    spanGive(off, it->second.span);
    gArena.live.erase(it);
    return 0;
}

// A copy or memset of [p, p + bytes) by the driver must lie within what a live allocation asked for (for a block of
// the caching allocator, what its current tensor asked for: sim_mem_usable). Returns 0, or -1 with sim_last_error
// naming the first byte outside.
SIM_EXPORT int sim_check_range(void* p, long long bytes) {
    arenaInit();
    size_t off = (char*) p - gArena.base;
    if (bytes <= 0) return 0;
    if (off >= gArena.size || (size_t) bytes > gArena.size - off) {
        setError("%lld bytes at %p: not device memory of the simulator", bytes, p);
        return -1;
    }
    if (addressable(off, (size_t) bytes)) return 0;
    size_t bad = off;
    while (addressable(bad, 1)) bad++;
    std::string where = describeGlobal(bad, 1);
    setError("%lld bytes at %p reach %s", bytes, p, where.c_str());
    return -1;
}

// The caching allocator's view of one of its blocks: the first `bytes` are what the current tensor asked
// for (addressable, filled with 0xff as a fresh allocation), the rest is slack; bytes < 0 marks the whole
// block idle in the allocator's cache. Returns 0, or -1 when p is not an allocation or bytes too large.
SIM_EXPORT int sim_mem_usable(void* p, long long bytes) {
    size_t off = (char*) p - gArena.base;
    Allocation* a;
    {
        std::lock_guard<std::mutex> guard(gArena.lock);
        auto it = gArena.live.find(off);
        if (it == gArena.live.end() || !it->second.device || (bytes >= 0 && (size_t) bytes > it->second.bytes)) {
            setError("sim_mem_usable(%p, %lld): not a device allocation of at least that size", p, bytes);
            return -1;
        }
        a = &it->second;
        a->usable = bytes < 0 ? 0 : (size_t) bytes;
    }
    markWritten(off, a->bytes, false);
    if (bytes < 0) {
        shadowSet(off, a->bytes, false, SHADOW_CACHED);
    } else {
        shadowSet(off, a->bytes, false, SHADOW_NONE);
        shadowSet(off, (size_t) bytes, true, 0);
        memset(p, 0xff, (size_t) bytes);
    }
    return 0;
}

// Marks [p, p + bytes) of device memory as written (uploads, memsets and copies of the sim driver).
SIM_EXPORT void sim_mark_written(void* p, long long bytes) {
    size_t off = (char*) p - gArena.base;
    if (bytes > 0 && off < gArena.size && off + (size_t) bytes <= gArena.size) markWritten(off, (size_t) bytes);
}

// Caps the device memory sim_malloc hands out (bytes in 256-byte granules); 0 removes the cap.
SIM_EXPORT void sim_set_memory_limit(long long bytes) {
    arenaInit();
    std::lock_guard<std::mutex> guard(gArena.lock);
    gArena.limit = bytes <= 0 ? 0 : (size_t) bytes;
}

SIM_EXPORT long long sim_memory_in_use(void) {
    std::lock_guard<std::mutex> guard(gArena.lock);
    return (long long) gArena.inUse;
}

// Scheduling orders for the next launches: threads (of a barrier's or a warp collective's release) and
// blocks, each 0 in order, 1 reversed, 2 shuffled with `seed`.
SIM_EXPORT void sim_set_schedule(int threadOrder, int blockOrder, unsigned long long seed) {
    gThreadOrder = threadOrder;
    gBlockOrder = blockOrder;
    gSeed = seed;
}

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
    size_t width = type == 0 ? 4 : 2;
    size_t off = (char*) base + i * width - gArena.base;
    if (off < gArena.size) markWritten(off, width);
}
} // namespace

// Row-major strided-batched GEMM with an optional bias epilogue, the contract of org.clipj.cuda.Blas:
//   D[b] (m, n) = alpha * op(A[b]) (m, k) @ op(B[b]) (k, n) + beta * C[b] + bias (n), broadcast over rows
// op(X) = X^T when transX. lda/ldb/ldc are row strides of the matrices as stored (C and D share ldc,
// strideC and cType; C may be D); stride* are the element offsets between batch entries. beta == 0
// never reads C (as cuBLAS); bias may be null.
// Products accumulate in F32, in k order.
SIM_EXPORT int sim_gemm(int transA, int transB, int m, int n, int k, float alpha, const void* a, int aType, long lda,
                        long strideA, const void* b, int bType, long ldb, long strideB, float beta, const void* c, void* d, int cType,
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
        size_t cEl = cType == 0 ? 4 : 2;
        const void* cb = (const char*) c + (size_t) bi * strideC * cEl;
        void* db = (char*) d + (size_t) bi * strideC * cEl;
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
                storeAs(db, cType, ci, v);
            }
        }
    }
    return 0;
}
