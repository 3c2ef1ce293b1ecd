package org.clipj;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class JitThresholdsTest {

    @Test
    void readsTheScalingOfPatternsThatCoverAllOfClipj() {
        assertEquals(1, JitThresholds.clipjScaling(List.of("-Xmx1g", "-XX:CompileCommand=quiet")));
        assertEquals(0.01, JitThresholds.clipjScaling(List.of("-XX:CompileCommand=quiet",
                "-XX:CompileCommand=CompileThresholdScaling,org.clipj.*::*,0.01")));
        assertEquals(0.05, JitThresholds.clipjScaling(List.of("-XX:CompileCommand=CompileThresholdScaling,org/clipj/*.*,0.05")));
        assertEquals(0.02, JitThresholds.clipjScaling(List.of("-XX:CompileCommand=CompileThresholdScaling,org.clipj.model.*::*,0.02")));
        assertEquals(0.2, JitThresholds.clipjScaling(List.of("-XX:CompileCommand=CompileThresholdScaling *::* 0.2")));
        // the last one counts, as in HotSpot
        assertEquals(0.5, JitThresholds.clipjScaling(List.of("-XX:CompileCommand=CompileThresholdScaling,org.clipj.*::*,0.01",
                "-XX:CompileCommand=CompileThresholdScaling,org.clipj.*::*,0.5")));
    }

    @Test
    void ignoresPatternsForPartsOfClipjOrOtherCode() {
        assertEquals(1, JitThresholds.clipjScaling(List.of(
                "-XX:CompileCommand=CompileThresholdScaling,org.clipj.model.ClipModel::encodeImage,0.01",
                "-XX:CompileCommand=CompileThresholdScaling,java.*::*,0.01",
                "-XX:CompileCommand=CompileThresholdScaling,org.clipj.*::*,oops")));
    }

    @Test
    void theLatencyFlagsScaleClipjAndTheTestJvmHasAC2Threshold() {
        assertEquals(JitThresholds.LATENCY_SCALING, JitThresholds.clipjScaling(List.of(JitThresholds.LATENCY_FLAGS.split(" "))));
        int calls = JitThresholds.callsToC2();   // the test JVM runs HotSpot with C2 and no clipj scaling
        assertTrue(calls >= 100, "calls to C2: " + calls);
    }
}
