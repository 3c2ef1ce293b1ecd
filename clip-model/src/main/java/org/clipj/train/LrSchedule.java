package org.clipj.train;

import org.clipj.runtime.InvalidInputException;

/**
 * Learning rate per step: linear warmup from baseLr/warmup to baseLr over {@code warmup} steps,
 * then constant or cosine decay to 0 at {@code totalSteps} (open_clip's cosine_lr / const_lr).
 * Steps are 0-based.
 */
public record LrSchedule(Kind kind, double baseLr, int warmup, int totalSteps) {

    public enum Kind { COSINE, CONST }

    public LrSchedule {
        if (!(baseLr >= 0) || Double.isInfinite(baseLr)) {
            throw new InvalidInputException("--lr must be a finite number >= 0, got " + baseLr);
        }
        if (warmup < 0) {
            throw new InvalidInputException("--warmup must be >= 0, got " + warmup);
        }
        if (totalSteps < 1) {
            throw new InvalidInputException("the number of steps must be >= 1, got " + totalSteps);
        }
    }

    public static Kind parseKind(String name) {
        return switch (name.toLowerCase(java.util.Locale.ROOT)) {
            case "cosine" -> Kind.COSINE;
            case "const", "constant" -> Kind.CONST;
            default -> throw new InvalidInputException("--schedule must be cosine or const, got '" + name + "'");
        };
    }

    public double lr(int step) {
        if (step < warmup) {
            return baseLr * (step + 1) / warmup;
        }
        if (kind == Kind.CONST) {
            return baseLr;
        }
        int decaySteps = totalSteps - warmup;
        if (decaySteps <= 0) {
            return baseLr;
        }
        double progress = Math.min(1.0, (double) (step - warmup) / decaySteps);
        return 0.5 * (1 + Math.cos(Math.PI * progress)) * baseLr;
    }
}
