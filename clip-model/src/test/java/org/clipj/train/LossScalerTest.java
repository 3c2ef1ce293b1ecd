package org.clipj.train;

import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** GradScaler's defaults: 65536, halve and skip on overflow, double after 2000 good steps. */
class LossScalerTest {

    @Test
    void halvesOnOverflowAndDoublesAfter2000GoodSteps() {
        LossScaler s = new LossScaler(null);
        assertEquals(65536f, s.scale());
        assertFalse(s.update(false), "an overflowing step is skipped");
        assertEquals(32768f, s.scale());
        for (int i = 0; i < 1999; i++) assertTrue(s.update(true));
        assertEquals(new LossScaler.State(32768f, 1999), s.state());
        assertTrue(s.update(true));
        assertEquals(new LossScaler.State(65536f, 0), s.state(), "the 2000th good step doubles the scale");
        for (int i = 0; i < 10; i++) s.update(true);
        s.update(false);
        assertEquals(new LossScaler.State(32768f, 0), s.state(), "an overflow restarts the count");
    }

    @Test
    void resumesFromAStateAndNeverOverflowsTheScale() {
        LossScaler s = new LossScaler(new LossScaler.State(Float.MAX_VALUE, 1999));
        assertTrue(s.update(true));
        assertEquals(new LossScaler.State(Float.MAX_VALUE, 0), s.state(), "growing past the largest float keeps it");
        LossScaler tiny = new LossScaler(new LossScaler.State(Float.MIN_NORMAL, 0));
        tiny.update(false);
        assertEquals(Float.MIN_NORMAL, tiny.scale());
        assertThrows(InvalidInputException.class, () -> new LossScaler.State(0f, 0));
        assertThrows(InvalidInputException.class, () -> new LossScaler.State(Float.NaN, 0));
        assertThrows(InvalidInputException.class, () -> new LossScaler.State(1f, 2000));
    }
}
