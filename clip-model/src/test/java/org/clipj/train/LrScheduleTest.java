package org.clipj.train;

import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class LrScheduleTest {

    @Test
    void warmupIsLinearThenCosineReachesZero() {
        LrSchedule s = new LrSchedule(LrSchedule.Kind.COSINE, 1e-3, 10, 110);
        assertEquals(1e-4, s.lr(0), 1e-12);
        assertEquals(5e-4, s.lr(4), 1e-12);
        assertEquals(1e-3, s.lr(10), 1e-12);
        assertEquals(0.5e-3, s.lr(60), 1e-12);
        assertEquals(0.5 * (1 + Math.cos(Math.PI * 0.25)) * 1e-3, s.lr(35), 1e-12);
        assertEquals(0.0, s.lr(110), 1e-12);
    }

    @Test
    void constantAfterWarmup() {
        LrSchedule s = new LrSchedule(LrSchedule.Kind.CONST, 2e-3, 4, 100);
        assertEquals(1e-3, s.lr(1), 1e-12);
        assertEquals(2e-3, s.lr(4), 1e-12);
        assertEquals(2e-3, s.lr(99), 1e-12);
    }

    @Test
    void badArgumentsAreNamed() {
        assertThrows(InvalidInputException.class, () -> LrSchedule.parseKind("linear"));
        assertThrows(InvalidInputException.class, () -> new LrSchedule(LrSchedule.Kind.COSINE, -1, 0, 10));
        assertThrows(InvalidInputException.class, () -> new LrSchedule(LrSchedule.Kind.COSINE, 1e-3, 0, 0));
    }
}
