package org.clipj.train;

import org.clipj.runtime.InvalidInputException;

/**
 * Dynamic loss scaling for F16 training, as torch.cuda.amp.GradScaler with its defaults: the loss (so every
 * gradient) is multiplied by {@link #scale()}; a step whose gradients hold an inf or NaN is skipped and the scale
 * halved; after 2000 good steps in a row the scale doubles. Starts at 65536. Not thread-safe (the training loop's).
 */
public final class LossScaler {
    public static final float INITIAL_SCALE = 65536f;
    public static final float GROWTH_FACTOR = 2f;
    public static final float BACKOFF_FACTOR = 0.5f;
    public static final int GROWTH_INTERVAL = 2000;

    /** The scale and the good steps since it last changed: what a checkpoint keeps so resume continues both. */
    public record State(float scale, int goodSteps) {
        public State {
            if (!(scale > 0) || Float.isInfinite(scale) || goodSteps < 0 || goodSteps >= GROWTH_INTERVAL) {
                throw new InvalidInputException("loss scale state: scale " + scale + " must be finite and > 0, good steps "
                        + goodSteps + " in [0, " + GROWTH_INTERVAL + ")");
            }
        }
    }

    private float scale;
    private int goodSteps;

    /** A scaler at the initial scale, or at a checkpoint's state (null: the initial one). */
    public LossScaler(State resumed) {
        State s = resumed == null ? new State(INITIAL_SCALE, 0) : resumed;
        this.scale = s.scale();
        this.goodSteps = s.goodSteps();
    }

    public float scale() {
        return scale;
    }

    public State state() {
        return new State(scale, goodSteps);
    }

    /**
     * Records one step's outcome; returns whether the optimizer step may run (the gradients were finite). A
     * non-finite step lowers the scale (never below the smallest normal float) and restarts the count.
     */
    public boolean update(boolean gradientsFinite) {
        if (!gradientsFinite) {
            scale = Math.max(scale * BACKOFF_FACTOR, Float.MIN_NORMAL);
            goodSteps = 0;
            return false;
        }
        goodSteps++;
        if (goodSteps == GROWTH_INTERVAL) {
            float grown = scale * GROWTH_FACTOR;
            if (Float.isFinite(grown)) scale = grown; // torch keeps the scale when growing it would overflow
            goodSteps = 0;
        }
        return true;
    }
}
