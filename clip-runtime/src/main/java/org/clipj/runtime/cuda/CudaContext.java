package org.clipj.runtime.cuda;

import java.nio.file.Path;
import java.util.Optional;

import org.clipj.cuda.Blas;
import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaDrivers;
import org.clipj.cuda.CudaException;
import org.clipj.cuda.SimCudaDriver;
import org.clipj.kernels.Kernels;

/**
 * What a {@link CudaBackend} runs on: the driver opened on device 0, its one stream, the device memory, the
 * loaded kernels, and one object per kernel family ({@code <Family>Kernels} for kernels/src/{@code <family>}.cu,
 * {@link MatmulKernels} for cuBLASLt) through which every op launches.
 */
final class CudaContext {
    final String description;
    final CudaStream stream;
    final DeviceMemory memory;
    final AdamwKernels adamw;
    final AttentionKernels attention;
    final AttnPoolKernels attnPool;
    final BatchNormKernels batchNorm;
    final ContrastiveKernels contrastive;
    final ConvKernels conv;
    final ElementwiseKernels elementwise;
    final EmbeddingKernels embedding;
    final LayerNormKernels layerNorm;
    final MatmulKernels matmul;
    final NormalizeKernels normalize;
    final ReduceKernels reduce;
    final SimilarityKernels similarity;
    final SoftmaxKernels softmax;
    final TransposeKernels transpose;
    private final CudaDriver driver;
    private final KernelLauncher launcher;
    private boolean closed;

    private CudaContext(CudaDriver driver, Blas blas, byte[] image, String description) {
        this.driver = driver;
        this.description = description;
        this.stream = new CudaStream(driver);
        this.launcher = new KernelLauncher(stream, image);
        this.memory = new DeviceMemory(stream);
        this.adamw = new AdamwKernels(launcher);
        this.attention = new AttentionKernels(launcher, memory);
        this.attnPool = new AttnPoolKernels(launcher);
        this.batchNorm = new BatchNormKernels(launcher, memory);
        this.elementwise = new ElementwiseKernels(launcher, memory, stream);
        this.embedding = new EmbeddingKernels(launcher, memory, stream);
        this.layerNorm = new LayerNormKernels(launcher, memory);
        this.matmul = new MatmulKernels(stream, blas, memory, elementwise);
        this.contrastive = new ContrastiveKernels(launcher, memory, matmul, elementwise);
        this.normalize = new NormalizeKernels(launcher);
        this.reduce = new ReduceKernels(launcher, memory);
        this.similarity = new SimilarityKernels(launcher);
        this.softmax = new SoftmaxKernels(launcher);
        this.transpose = new TransposeKernels(launcher);
        this.conv = new ConvKernels(launcher, memory, matmul, elementwise, transpose);
    }

    /** See {@link CudaBackend#unavailableWithoutLoading}. */
    static Optional<String> unavailableWithoutLoading(String binding) {
        Optional<String> driver = CudaDrivers.unavailableWithoutLoading(binding);
        if (driver.isPresent() || "sim".equals(binding)) return driver;
        String kernels = Kernels.fatbinUnavailableReason();
        return kernels == null ? Optional.empty() : Optional.of("CUDA kernels not available: " + kernels);
    }

    /** See {@link CudaBackend#open(String, boolean)}. */
    static CudaContext open(String binding, boolean tf32) {
        byte[] image;
        CudaDriver driver;
        if ("sim".equals(binding)) {
            Path library = Kernels.simLibrary().orElseThrow(() -> new CudaException(
                    "CUDA simulator not available: " + Kernels.simLibraryUnavailableReason()));
            driver = new SimCudaDriver(library);
            image = new byte[0]; // the simulator's kernels are compiled into its library
        } else {
            image = Kernels.fatbin().orElseThrow(() -> new CudaException(
                    "CUDA kernels not available: " + Kernels.fatbinUnavailableReason()));
            driver = CudaDrivers.open(binding, 0);
        }
        try {
            Blas blas = Blas.open(driver, tf32);
            CudaDriver.DeviceInfo info = driver.device();
            String description = "cuda (" + binding + "): " + info.name() + ", sm_" + info.computeMajor() + info.computeMinor()
                    + ", " + info.multiprocessors() + " SMs, " + (info.totalMemoryBytes() >> 20) + " MiB" + (tf32 ? ", TF32 GEMMs" : "");
            return new CudaContext(driver, blas, image, description);
        } catch (RuntimeException e) {
            driver.close();
            throw e;
        }
    }

    /** Waits for the stream, then frees everything, the driver last; a second close does nothing. */
    void close() {
        if (closed) return;
        closed = true;
        try {
            stream.close();
        } finally {
            memory.close();
            stream.destroy();
            launcher.close();
            matmul.close();
            driver.close();
        }
    }
}
