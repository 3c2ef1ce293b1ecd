package org.clipj.model;

import org.clipj.io.StoredTensor;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Loading, validation, initialization, parameter storage and thread safety of {@link ClipModel}. */
class ClipModelTest {
    private final Backend backend = new CpuBackend();

    @Test
    void rejectsAWrongShapedTensorByName() {
        Map<String, Tensor> sd = new HashMap<>(GoldenData.model("tiny-vit"));
        sd.put("visual.ln_post.bias", Tensor.zeros(DType.F32, 127));
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> ClipModel.fromStateDict(sd, backend));
        assertTrue(e.getMessage().contains("visual.ln_post.bias") && e.getMessage().contains("[127]")
                && e.getMessage().contains("[128]"), e.getMessage());
    }

    @Test
    void rejectsMissingAndUnknownTensorsByName() {
        Map<String, Tensor> missing = new HashMap<>(GoldenData.model("tiny-vit"));
        missing.remove("transformer.resblocks.1.mlp.c_proj.bias");
        InvalidInputException e1 = assertThrows(InvalidInputException.class,
                () -> ClipModel.fromStateDict(missing, backend));
        assertTrue(e1.getMessage().contains("transformer.resblocks.1.mlp.c_proj.bias"), e1.getMessage());

        Map<String, Tensor> extra = new HashMap<>(GoldenData.model("tiny-vit"));
        extra.put("visual.extra_head.weight", Tensor.zeros(DType.F32, 2));
        InvalidInputException e2 = assertThrows(InvalidInputException.class, () -> ClipModel.fromStateDict(extra, backend));
        assertTrue(e2.getMessage().contains("visual.extra_head.weight"), e2.getMessage());

        Map<String, Tensor> ignorable = new HashMap<>(GoldenData.model("tiny-rn"));
        ignorable.put("visual.bn1.num_batches_tracked", Tensor.of(new long[]{7}, 1));
        ignorable.put("transformer.resblocks.0.attn_mask", Tensor.zeros(DType.F32, 77, 77));
        ignorable.put("input_resolution", Tensor.of(new long[]{64}, 1));
        ClipModel.fromStateDict(ignorable, backend);
    }

    @Test
    void widensHalfPrecisionWeightsAtLoad() {
        Map<String, Tensor> sd = GoldenData.model("tiny-vit");
        Map<String, Tensor> half = new HashMap<>();
        sd.forEach((k, t) -> {
            float[] f = t.toFloatArray();
            short[] bits = new short[f.length];
            for (int i = 0; i < f.length; i++) {
                bits[i] = DType.floatToF16(f[i]);
            }
            half.put(k, Tensor.ofBits(DType.F16, bits, t.shape()));
        });
        ClipModel model = ClipModel.fromStateDict(half, backend);
        Tensor w = model.stateDict().get("visual.proj");
        assertEquals(DType.F32, w.dtype());
        float[] expected = sd.get("visual.proj").toFloatArray();
        float[] actual = w.toFloatArray();
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], Math.abs(expected[i]) * 1e-3f + 1e-7f);
        }
    }

    @Test
    void stateDictRoundTripsEveryTensorAndBuffer() {
        Map<String, Tensor> sd = GoldenData.model("tiny-rn");
        ClipModel model = ClipModel.fromStateDict(sd, backend);
        Map<String, Tensor> out = model.stateDict();
        assertEquals(sd.keySet(), out.keySet());
        for (Map.Entry<String, Tensor> e : sd.entrySet()) {
            assertArrayEquals(e.getValue().shape(), out.get(e.getKey()).shape(), e.getKey());
            assertArrayEquals(e.getValue().toFloatArray(), out.get(e.getKey()).toFloatArray(), e.getKey());
        }
        // copies, not views: editing the returned tensor leaves the model alone
        out.get("visual.bn1.running_var").f32()[0] = -5f;
        assertNotEquals(-5f, model.stateDict().get("visual.bn1.running_var").f32()[0]);
    }

    @Test
    void parametersAreViewsIntoOneBufferPerTower() {
        ClipModel model = ClipModel.fromStateDict(GoldenData.model("tiny-vit"), backend);
        List<Parameter> params = model.parameters();
        Object visualBuffer = null;
        Object textBuffer = null;
        int visualEnd = 0;
        int textEnd = 0;
        for (Parameter p : params) {
            boolean visual = p.name().startsWith("visual.");
            assertArrayEquals(p.value().shape(), p.grad().shape(), p.name());
            if (visual) {
                visualBuffer = visualBuffer == null ? p.value().f32() : visualBuffer;
                assertSame(visualBuffer, p.value().f32(), p.name());
                assertEquals(visualEnd, p.value().offset(), p.name() + " follows the previous parameter");
                visualEnd += p.value().size();
            } else {
                textBuffer = textBuffer == null ? p.value().f32() : textBuffer;
                assertSame(textBuffer, p.value().f32(), p.name());
                assertEquals(textEnd, p.value().offset(), p.name() + " follows the previous parameter");
                textEnd += p.value().size();
            }
        }
        assertEquals("logit_scale", params.get(params.size() - 1).name());
        assertSame(model.logitScale(), params.get(params.size() - 1).value());
        // zeroGrad clears every gradient
        for (Parameter p : params) {
            backend.fill(p.grad(), 3f);
        }
        model.zeroGrad();
        for (Parameter p : params) {
            assertEquals(0f, GoldenData.maxAbs(p.grad().toFloatArray()), p.name());
        }
    }

    /**
     * An inference model keeps one copy of each GEMM weight (prepared) and none of the state dict:
     * consumeStateDict empties the map it is given (but for weightless entries) and encodes as
     * fromStateDict and as the trainable model; the training calls and stateDict refuse it by name.
     */
    @Test
    void inferenceModelsConsumeTheStateDictAndRefuseTraining() {
        for (String name : new String[] {"tiny-vit", "tiny-rn"}) {
            Map<String, Tensor> golden = GoldenData.golden(name);
            Tensor image = GoldenData.get(golden, "input.image"), text = GoldenData.get(golden, "input.text");
            ClipModel trainable = ClipModel.fromStateDict(GoldenData.model(name), backend);
            ClipModel loaded = ClipModel.fromStateDict(GoldenData.model(name), backend, Precision.F32);
            Map<String, StoredTensor> handedOver = new HashMap<>(GoldenData.stored(name));
            handedOver.put("transformer.resblocks.0.attn_mask", StoredTensor.of(DType.F32, new int[] {77, 77},
                    () -> Tensor.zeros(DType.F32, 77, 77)));
            ClipModel consumed = ClipModel.consumeStateDict(handedOver, loaded.config(), backend, Precision.F32);
            assertEquals(List.of("transformer.resblocks.0.attn_mask"), List.copyOf(handedOver.keySet()), name);
            for (ClipModel m : List.of(loaded, consumed)) {
                // equal up to summation order: a Vector API reduction runs in another order before C2
                // compiles it than after, so two forwards at different JIT states may differ in the last bit
                assertArrayEquals(trainable.encodeImage(image).f32(), m.encodeImage(image).f32(), 1e-5f, name + " image");
                assertArrayEquals(trainable.encodeText(text).f32(), m.encodeText(text).f32(), 1e-5f, name + " text");
                IllegalStateException e = assertThrows(IllegalStateException.class, m::stateDict);
                assertTrue(e.getMessage().startsWith("stateDict: this model was loaded for F32 inference"), e.getMessage());
                assertThrows(IllegalStateException.class, m::parameters);
                assertThrows(IllegalStateException.class, m::zeroGrad);
                assertThrows(IllegalStateException.class, () -> m.forwardImage(image, false));
            }
        }
    }

    @Test
    void initializeIsDeterministicAndFollowsOpenAi() {
        ClipConfig tiny = ClipConfig.named("tiny").withVocabSize(500);
        Map<String, Tensor> a = ClipModel.initialize(tiny, 42, backend).stateDict();
        Map<String, Tensor> b = ClipModel.initialize(tiny, 42, backend).stateDict();
        Map<String, Tensor> c = ClipModel.initialize(tiny, 43, backend).stateDict();
        for (String k : a.keySet()) {
            assertArrayEquals(a.get(k).toFloatArray(), b.get(k).toFloatArray(), k);
        }
        assertEquals((float) Math.log(1 / 0.07), a.get("logit_scale").f32()[0], 1e-6f);
        assertTrue(GoldenData.maxDiff("token_embedding", a.get("token_embedding.weight"),
                c.get("token_embedding.weight")) > 0);
        assertEquals(0.02, std(a.get("token_embedding.weight")), 0.002);
        assertEquals(0.01, std(a.get("positional_embedding")), 0.001);
        assertEquals(Math.pow(128, -0.5), std(a.get("transformer.resblocks.0.attn.in_proj_weight")), 0.005);
        assertArrayEquals(new float[384], a.get("transformer.resblocks.0.attn.in_proj_bias").toFloatArray());
        float[] ones = new float[128];
        java.util.Arrays.fill(ones, 1f);
        assertArrayEquals(ones, a.get("visual.ln_pre.weight").toFloatArray());

        ClipConfig rn = ClipConfig.resnet("rn-test", 32, 64, 16, List.of(1, 2, 1, 1), 16, 300, 64, 1);
        Map<String, Tensor> r = ClipModel.initialize(rn, 1, backend).stateDict();
        assertEquals(0f, GoldenData.maxAbs(r.get("visual.layer2.1.bn3.weight").toFloatArray()));
        assertEquals(1f, r.get("visual.bn3.weight").f32()[0]);
        assertEquals(1f, r.get("visual.layer2.0.bn2.running_var").f32()[0]);
        assertTrue(r.containsKey("visual.layer2.0.downsample.0.weight"));
        assertTrue(!r.containsKey("visual.layer2.1.downsample.0.weight"));
        // an initialized model loads back through fromStateDict and encodes the same
        ClipModel model = ClipModel.fromStateDict(r, backend);
        assertEquals(rn.resnetLayers(), model.config().resnetLayers());
        Tensor pixels = randomPixels(2, 64, 5);
        assertEquals(0f, GoldenData.maxDiff("reloaded", ClipModel.fromStateDict(r, backend).encodeImage(pixels),
                model.encodeImage(pixels)), 1e-5f);
    }

    @Test
    void encodesFromManyThreadsAtOnce() throws Exception {
        Map<String, Tensor> golden = GoldenData.golden("tiny-vit");
        ClipModel model = ClipModel.fromStateDict(GoldenData.model("tiny-vit"), backend);
        Tensor image = golden.get("input.image");
        Tensor text = golden.get("input.text");
        Tensor img = model.encodeImage(image);
        Tensor txt = model.encodeText(text);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<float[][]>> futures = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                futures.add(pool.submit(() -> new float[][]{model.encodeImage(image).toFloatArray(),
                        model.encodeText(text).toFloatArray()}));
            }
            // Not bit-exact: the JIT may change the Vector API's lane-reduction order between calls.
            // A shared scratch buffer would corrupt whole rows, far beyond this tolerance.
            for (Future<float[][]> f : futures) {
                assertArrayEquals(img.toFloatArray(), f.get()[0], 1e-5f);
                assertArrayEquals(txt.toFloatArray(), f.get()[1], 1e-5f);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void rejectsBadInputsWithClearMessages() {
        ClipModel model = ClipModel.fromStateDict(GoldenData.model("tiny-vit"), backend);
        InvalidInputException e1 = assertThrows(InvalidInputException.class,
                () -> model.encodeImage(Tensor.zeros(DType.F32, 1, 3, 31, 32)));
        assertTrue(e1.getMessage().contains("32"), e1.getMessage());
        InvalidInputException e2 = assertThrows(InvalidInputException.class,
                () -> model.encodeText(Tensor.of(new int[]{49406, 49408}, 1, 2)));
        assertTrue(e2.getMessage().contains("49408"), e2.getMessage());
        assertThrows(InvalidInputException.class, () -> model.encodeText(Tensor.zeros(DType.I32, 1, 78)));
    }

    @Test
    void textIdsPooledOnTheBackendMatchEncodeText() {
        ClipModel model = ClipModel.fromStateDict(GoldenData.model("tiny-vit"), backend);
        Tensor text = GoldenData.golden("tiny-vit").get("input.text");
        Tensor ids = model.uploadTokenIds(text);
        assertArrayEquals(text.shape(), ids.shape()); // every position kept, none cut at the last EOT
        assertArrayEquals(model.encodeText(text).toFloatArray(), model.encodeTextIds(ids).toFloatArray(), 1e-5f);
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> model.encodeTextIds(Tensor.zeros(DType.F32, 1, 4)));
        assertTrue(e.getMessage().startsWith("ids are F32 [1, 4] on CPU, expected (B, T) I32"), e.getMessage());
        assertThrows(InvalidInputException.class, () -> model.uploadTokenIds(Tensor.of(new int[]{49406, 49408}, 1, 2)));
    }

    @Test
    void resnetBackwardNeedsTrainModeBatchNorm() {
        ClipModel model = ClipModel.fromStateDict(GoldenData.model("tiny-rn"), backend);
        ImageActivations eval = model.forwardImage(randomPixels(2, 64, 1), false);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> model.backwardImage(eval, Tensor.zeros(DType.F32, 2, 64)));
        assertTrue(e.getMessage().contains("eval mode"), e.getMessage());
        ImageActivations train = model.forwardImage(randomPixels(2, 64, 1), true);
        assertThrows(IllegalArgumentException.class, () -> model.backwardImage(train, Tensor.zeros(DType.F32, 3, 64)));
    }

    private static double std(Tensor t) {
        float[] v = t.toFloatArray();
        double sum = 0;
        double sq = 0;
        for (float x : v) {
            sum += x;
            sq += (double) x * x;
        }
        double mean = sum / v.length;
        return Math.sqrt(sq / v.length - mean * mean);
    }

    static Tensor randomPixels(int batch, int res, long seed) {
        java.util.SplittableRandom rng = new java.util.SplittableRandom(seed);
        float[] v = new float[batch * 3 * res * res];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rng.nextGaussian();
        }
        return Tensor.of(v, batch, 3, res, res);
    }
}
