package org.clipj.runtime;

/** The MLP activation a fused linear op applies ({@link Backend#linearActivationForward}). */
public enum Activation {
    /** x * sigmoid(1.702 x), openai/CLIP's (as {@link Backend#quickGeluForward}). */
    QUICK_GELU,
    /** Exact GELU, x * Phi(x), torch's nn.GELU() (as {@link Backend#geluForward}). */
    GELU
}
