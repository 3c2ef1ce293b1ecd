package org.clipj.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

class BackendsTest {

    /** Whether an explicit "cuda" starts here; when it does not, the error must say why. */
    private static boolean cudaStarts() {
        try (Backend cuda = Backends.create("cuda")) {
            assertEquals("cuda", cuda.name());
            return true;
        } catch (InvalidInputException e) {
            assertTrue(e.getMessage().startsWith("CUDA backend not available: "), e.getMessage());
            return false;
        }
    }

    @Test
    void cpuAndAutoFollowWhatCanStart() {
        boolean cuda = cudaStarts();
        try (Backend cpu = Backends.create("cpu"); Backend auto = Backends.create("AUTO")) {
            assertEquals("cpu", cpu.name());
            assertTrue(cpu instanceof CpuBackend);
            assertEquals(cuda ? Device.CUDA : Device.CPU, auto.device());
        }
    }

    @Test
    void unknownNamesAreRejected() {
        InvalidInputException u = assertThrows(InvalidInputException.class, () -> Backends.create("tpu"));
        assertTrue(u.getMessage().contains("tpu"), u.getMessage());
    }

    @Test
    void systemPropertySelects() {
        String saved = System.getProperty("clip.backend");
        try {
            System.setProperty("clip.backend", "cpu");
            try (Backend b = Backends.fromEnvironment()) {
                assertEquals("cpu", b.name());
            }
            System.setProperty("clip.backend", "nonsense");
            InvalidInputException e = assertThrows(InvalidInputException.class, Backends::fromEnvironment);
            assertTrue(e.getMessage().contains("clip.backend"), e.getMessage());
        } finally {
            if (saved == null) System.clearProperty("clip.backend");
            else System.setProperty("clip.backend", saved);
        }
    }

    @Test
    void propertyBeatsEnvironmentBeatsDefault() {
        assertEquals(new Backends.Request("cpu", "system property clip.backend=cpu"), Backends.request("cpu", "cuda"));
        assertEquals(new Backends.Request("cuda", "environment CLIP_BACKEND=cuda"), Backends.request(" ", "cuda"));
        assertEquals("auto", Backends.request(null, "").name());
        InvalidInputException e = assertThrows(InvalidInputException.class,
                () -> Backends.request(null, "gpu0").checkedName());
        assertEquals("unknown backend 'gpu0' (environment CLIP_BACKEND=gpu0): expected cpu, cuda or auto", e.getMessage());
        assertEquals("cuda", Backends.request("CUDA ", null).checkedName());
    }

    @Test
    void anExplicitNameBeatsTheProperty() {
        String saved = System.getProperty("clip.backend");
        try {
            System.setProperty("clip.backend", "nonsense");
            try (Backend b = Backends.select("cpu", "--device cpu")) {
                assertEquals("cpu", b.name());
            }
            InvalidInputException e = assertThrows(InvalidInputException.class, () -> Backends.select(null, "unused"));
            assertTrue(e.getMessage().contains("system property clip.backend=nonsense"), e.getMessage());
            InvalidInputException named = assertThrows(InvalidInputException.class, () -> Backends.select("tpu", "--device tpu"));
            assertTrue(named.getMessage().contains("(--device tpu)"), named.getMessage());
        } finally {
            if (saved == null) System.clearProperty("clip.backend");
            else System.setProperty("clip.backend", saved);
        }
    }

    @Test
    void cpuBackendPropertiesAndPaths() {
        try (CpuBackend scalar = new CpuBackend(1, false); CpuBackend fast = new CpuBackend(3, true)) {
            assertTrue(scalar.description().contains("scalar"));
            assertTrue(fast.description().contains("3 threads"), fast.description());
        }
        assertThrows(IllegalArgumentException.class, () -> new CpuBackend(0, true));
    }
}
