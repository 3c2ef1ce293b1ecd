package org.clipj.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

class CudaErrorsTest {
    @Test
    void driverStatusNames() {
        assertEquals("CUDA_SUCCESS", CudaErrors.name(0));
        assertEquals("CUDA_ERROR_OUT_OF_MEMORY", CudaErrors.name(2));
        assertEquals("CUDA_ERROR_NO_DEVICE", CudaErrors.name(100));
        assertEquals("CUDA_ERROR_NO_BINARY_FOR_GPU", CudaErrors.name(209));
        assertEquals("CUDA_ERROR_NOT_FOUND", CudaErrors.name(500));
        assertEquals("CUDA_ERROR_ILLEGAL_ADDRESS", CudaErrors.name(700));
        assertEquals("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", CudaErrors.name(701));
        assertEquals("CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", CudaErrors.name(901));
        assertEquals("CUDA_ERROR_UNKNOWN", CudaErrors.name(999));
        assertEquals("CUresult_12345", CudaErrors.name(12345));
    }

    @Test
    void cublasStatusNames() {
        assertEquals("CUBLAS_STATUS_SUCCESS", CuBlasLt.statusName(0));
        assertEquals("CUBLAS_STATUS_INVALID_VALUE", CuBlasLt.statusName(7));
        assertEquals("CUBLAS_STATUS_NOT_SUPPORTED", CuBlasLt.statusName(15));
        assertEquals("cublasStatus_99", CuBlasLt.statusName(99));
    }

    @Test
    void exceptionNamesCallErrorAndOp() {
        CudaException e = new CudaException("cuLaunchKernel", 700, CudaErrors.name(700), "attention_forward");
        assertEquals("cuLaunchKernel failed: CUDA_ERROR_ILLEGAL_ADDRESS (700) in attention_forward", e.getMessage());
        assertEquals("cuLaunchKernel", e.call());
        assertEquals(700, e.status());
        assertEquals("CUDA_ERROR_ILLEGAL_ADDRESS", e.errorName());
        CudaException plain = new CudaException("no GPU");
        assertEquals(-1, plain.status());
        assertNull(plain.call());
    }
}
