package org.clipj.runtime;

/**
 * Element types. Conversions between F32 and the 16-bit float types round to nearest even,
 * keep NaN a NaN (quiet), and handle infinities and subnormals exactly.
 */
public enum DType {
    F32(4), F16(2), BF16(2), I32(4), I64(8);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    public int byteSize() {
        return byteSize;
    }

    public boolean isFloatingPoint() {
        return this == F32 || this == F16 || this == BF16;
    }

    /** F32 -> BF16 bits, round to nearest even; NaN stays NaN (quiet bit set). */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    /** BF16 bits -> F32 (exact). */
    public static float bf16ToFloat(short h) {
        return Float.intBitsToFloat((h & 0xffff) << 16);
    }

    /** F32 -> IEEE half bits, round to nearest even (the JDK's own conversion). */
    public static short floatToF16(float f) {
        return Float.floatToFloat16(f);
    }

    /** IEEE half bits -> F32 (exact). */
    public static float f16ToFloat(short h) {
        return Float.float16ToFloat(h);
    }
}
