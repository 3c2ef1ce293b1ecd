/* fake_libcuda.c: a stand-in libcuda.so.1 over the simulator, for testing the FFM driver binding
 * (org.clipj.cuda.PanamaCudaDriver) on machines without a GPU: every entry point that binding calls,
 * with the real signatures, on host memory; kernels launch through the simulator test library's
 * sim_launch. Graph capture is not emulated (CUDA_ERROR_NOT_SUPPORTED). Test-only: never packaged. */
#define _GNU_SOURCE /* strdup, clock_gettime with any -std */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

extern int sim_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                      unsigned sharedBytes, void** params);
extern void* sim_malloc(size_t bytes);
extern void sim_mark_written(void* p, long long bytes);
extern int sim_free(void* p);
extern int sim_kernel_params(const char* name, int* sizes, int max);

#define EXPORT __attribute__((visibility("default")))
enum { OK = 0, INVALID_VALUE = 1, INVALID_DEVICE = 101, NOT_FOUND = 500, LAUNCH_FAILED = 719, NOT_SUPPORTED = 801 };

static unsigned long long next_handle = 1;

EXPORT CUresult cuInit(unsigned flags) { (void) flags; return OK; }
EXPORT CUresult cuGetErrorName(CUresult e, const char** s) {
    switch (e) {
        case OK: *s = "CUDA_SUCCESS"; return OK;
        case INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; return OK;
        case INVALID_DEVICE: *s = "CUDA_ERROR_INVALID_DEVICE"; return OK;
        case NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; return OK;
        case LAUNCH_FAILED: *s = "CUDA_ERROR_LAUNCH_FAILED"; return OK;
        case NOT_SUPPORTED: *s = "CUDA_ERROR_NOT_SUPPORTED"; return OK;
        default: *s = 0; return INVALID_VALUE;
    }
}
EXPORT CUresult cuDeviceGetCount(int* count) { *count = 1; return OK; }
EXPORT CUresult cuDeviceGet(int* device, int ordinal) { if (ordinal != 0) return INVALID_DEVICE; *device = 0; return OK; }
EXPORT CUresult cuDeviceGetName(char* name, int len, int device) {
    (void) device;
    strncpy(name, "clipj fake driver", (size_t) len);
    name[len - 1] = 0;
    return OK;
}
EXPORT CUresult cuDeviceGetAttribute(int* value, int attribute, int device) {
    (void) device;
    switch (attribute) {
        case 16: *value = 2; return OK;       /* multiprocessors */
        case 75: *value = 9; return OK;       /* compute capability major */
        case 76: *value = 0; return OK;       /* minor */
        case 97: *value = 232448; return OK;  /* max shared memory per block, opt-in */
        default: return INVALID_VALUE;
    }
}
EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, int device) { (void) device; *bytes = (size_t) 80 << 30; return OK; }
EXPORT CUresult cuDevicePrimaryCtxRetain(void** ctx, int device) { (void) device; *ctx = (void*) 0x1; return OK; }
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(int device) { (void) device; return OK; }
static __thread void* current_ctx;
EXPORT CUresult cuCtxSetCurrent(void* ctx) {
    if (ctx != (void*) 0x1) return INVALID_VALUE;
    current_ctx = ctx;
    return OK;
}
EXPORT CUresult cuCtxGetCurrent(void** ctx) { *ctx = current_ctx; return OK; }
// As the real driver: allocation needs the context current on the calling OS thread (else CUDA_ERROR_INVALID_CONTEXT).
EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
    if (current_ctx == NULL) return 201;
    *p = (CUdeviceptr) (uintptr_t) sim_malloc(bytes);
    return *p ? OK : 2;
}
EXPORT CUresult cuMemFree_v2(CUdeviceptr p) { return sim_free((void*) (uintptr_t) p) == 0 ? OK : INVALID_VALUE; }
EXPORT CUresult cuMemAllocHost_v2(void** p, size_t bytes) { *p = sim_malloc(bytes); return *p ? OK : 2; }
EXPORT CUresult cuMemFreeHost(void* p) { return sim_free(p) == 0 ? OK : INVALID_VALUE; }
EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, void* s) { (void) s; memcpy((void*) (uintptr_t) dst, src, n); sim_mark_written((void*) (uintptr_t) dst, (long long) n); return OK; }
EXPORT CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, void* s) { (void) s; memcpy(dst, (void*) (uintptr_t) src, n); return OK; }
EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void* s) { (void) s; memmove((void*) (uintptr_t) dst, (void*) (uintptr_t) src, n); sim_mark_written((void*) (uintptr_t) dst, (long long) n); return OK; }
EXPORT CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, void* s) { (void) s; memset((void*) (uintptr_t) dst, v, n); sim_mark_written((void*) (uintptr_t) dst, (long long) n); return OK; }
EXPORT CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned v, size_t n, void* s) {
    (void) s;
    for (size_t i = 0; i < n; i++) ((unsigned*) (uintptr_t) dst)[i] = v;
    sim_mark_written((void*) (uintptr_t) dst, (long long) n * 4);
    return OK;
}
EXPORT CUresult cuStreamCreate(void** s, unsigned flags) { (void) flags; *s = (void*) (uintptr_t) (next_handle++ << 4); return OK; }
EXPORT CUresult cuStreamSynchronize(void* s) { (void) s; return OK; }
EXPORT CUresult cuStreamDestroy_v2(void* s) { (void) s; return OK; }
EXPORT CUresult cuEventCreate(void** e, unsigned flags) { (void) flags; *e = calloc(1, sizeof(double)); return OK; }
EXPORT CUresult cuEventRecord(void* e, void* s) {
    (void) s;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    *(double*) e = t.tv_sec * 1e3 + t.tv_nsec / 1e6;
    return OK;
}
EXPORT CUresult cuEventSynchronize(void* e) { (void) e; return OK; }
EXPORT CUresult cuEventElapsedTime_v2(float* ms, void* a, void* b) { *ms = (float) (*(double*) b - *(double*) a); return OK; }
EXPORT CUresult cuEventDestroy_v2(void* e) { free(e); return OK; }
EXPORT CUresult cuModuleLoadData(void** m, const void* image) { (void) image; *m = (void*) 0x2; return OK; }
EXPORT CUresult cuModuleUnload(void* m) { return m == (void*) 0x2 ? OK : INVALID_VALUE; }
EXPORT CUresult cuModuleGetFunction(void** f, void* m, const char* name) {
    if (m != (void*) 0x2) return INVALID_VALUE;
    if (sim_kernel_params(name, 0, 0) < 0) return NOT_FOUND;
    *f = strdup(name);
    return OK;
}
EXPORT CUresult cuFuncSetAttribute(void* f, int attribute, int value) { (void) f; (void) attribute; return value >= 0 ? OK : INVALID_VALUE; }
EXPORT CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                               unsigned shared, void* s, void** params, void** extra) {
    (void) s;
    if (extra != 0) return INVALID_VALUE;
    switch (sim_launch((const char*) f, gx, gy, gz, bx, by, bz, shared, params)) {
        case 0: return OK;
        case 1: return NOT_FOUND;
        case 2: return INVALID_VALUE;
        default: return LAUNCH_FAILED;
    }
}
EXPORT CUresult cuStreamBeginCapture_v2(void* s, int mode) { (void) s; (void) mode; return NOT_SUPPORTED; }
EXPORT CUresult cuStreamEndCapture(void* s, void** g) { (void) s; (void) g; return NOT_SUPPORTED; }
EXPORT CUresult cuGraphInstantiateWithFlags(void** e, void* g, unsigned long long flags) { (void) e; (void) g; (void) flags; return NOT_SUPPORTED; }
EXPORT CUresult cuGraphDestroy(void* g) { (void) g; return NOT_SUPPORTED; }
EXPORT CUresult cuGraphLaunch(void* e, void* s) { (void) e; (void) s; return NOT_SUPPORTED; }
EXPORT CUresult cuGraphExecDestroy(void* e) { (void) e; return NOT_SUPPORTED; }
