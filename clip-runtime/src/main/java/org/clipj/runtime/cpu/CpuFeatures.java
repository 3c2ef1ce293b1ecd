package org.clipj.runtime.cpu;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;

import org.clipj.runtime.InvalidInputException;

/**
 * What the CPU offers the GEMM and attention blocking: the Vector API's preferred width (what C2
 * will emit), whether AVX-512's 32 vector registers are there, the FMA datapath behind it and the
 * L2 size per core. Read once from /proc/cpuinfo and sysfs (Linux); elsewhere the vector width
 * still comes from the JVM and the cache size falls back to {@link #ASSUMED_L2_BYTES} (said so in
 * {@link #describe()}).
 */
public record CpuFeatures(String model, String vendor, int family, int modelNumber, Set<String> flags,
                          int vectorBits, long l2Bytes, boolean l2Detected) {

    /** Zen 2..5, Skylake-SP..Sapphire Rapids all have 512 KiB to 2 MiB; 1 MiB is their middle. */
    static final long ASSUMED_L2_BYTES = 1L << 20;

    private static final String VECTOR_MODULE = "jdk.incubator.vector";
    /** This machine's features, detected on first use. */
    public static CpuFeatures host() {
        return Host.FEATURES;
    }

    /** Detection reads the Vector API's width: loaded only when asked, after {@link #requireVectorApi}. */
    private static final class Host {
        static final CpuFeatures FEATURES = detect();
    }

    /**
     * 32 architectural vector registers: true where the JVM emits AVX-512 (a 512-bit preferred
     * species); an AVX2 machine (or a JVM held to -XX:UseAVX=2) has 16, and a tile with more
     * accumulators than fit there would spill in its inner loop.
     */
    public boolean vectorRegisters32() {
        return vectorBits >= 512;
    }

    /** The FMA datapath behind {@link #vectorBits}, for reports: it decides the peak, not the ISA. */
    public String fmaDatapath() {
        if (vectorBits < 512) return flags.contains("fma") ? vectorBits + "-bit FMA (AVX2)" : "no FMA";
        if (vendor.equals("AuthenticAMD")) {
            if (family == 0x19) return "Zen 4: AVX-512 on 256-bit FMA pipes (double-pumped)";
            if (family == 0x1A) {
                return fmaPipeBits() == 512 ? "Zen 5: full 512-bit FMA pipes"
                        : "Zen 5 (mobile): AVX-512 on 256-bit FMA pipes (double-pumped)";
            }
            return "AMD AVX-512, datapath unknown (256-bit assumed)";
        }
        return vendor.equals("GenuineIntel") ? "Intel AVX-512 (512-bit FMA)" : "AVX-512, datapath unknown (256-bit assumed)";
    }

    /**
     * Width of one FMA pipe in bits: 512 on Intel AVX-512 and on desktop/server Zen 5, 256 on Zen 4,
     * mobile Zen 5 (Strix Point, Krackan Point: models 0x20-0x2f, 0x60-0x7f) and AVX2. A peak in FP32
     * FLOP/cycle/core is 2 (FMA) x fmaPipeBits / 32 x 2 pipes (two FMA pipes on all of these).
     */
    public int fmaPipeBits() {
        if (vectorBits < 512) return flags.contains("fma") ? vectorBits : 0;
        if (vendor.equals("GenuineIntel")) return 512;
        if (vendor.equals("AuthenticAMD") && family == 0x1A) {
            boolean mobile = (modelNumber >= 0x20 && modelNumber < 0x30) || (modelNumber >= 0x60 && modelNumber < 0x80);
            return mobile ? 256 : 512;
        }
        return 256;
    }

    /** One line: model, width, datapath, cache, as CpuBackend and scripts/bench print it. */
    public String describe() {
        return model + ", Vector API " + vectorBits + "-bit, " + (vectorRegisters32() ? 32 : 16) + " vector registers, "
                + fmaDatapath() + (flags.contains("avx512_bf16") ? ", AVX512_BF16" : "") + ", L2 "
                + (l2Bytes >> 10) + " KiB" + (l2Detected ? "" : " (assumed: not readable here)");
    }

    static CpuFeatures detect() {
        int bits = Vec.S.vectorBitSize();
        List<String> cpuinfo = readLines(Path.of("/proc/cpuinfo"));
        String model = field(cpuinfo, "model name", System.getProperty("os.arch"));
        String vendor = field(cpuinfo, "vendor_id", "unknown");
        int family = parseInt(field(cpuinfo, "cpu family", "-1"));
        int modelNumber = parseInt(field(cpuinfo, "model", "-1"));
        Set<String> flags = Set.of(field(cpuinfo, "flags", "").split("\\s+"));
        long l2 = sysfsL2();
        if (l2 <= 0 && vendor.equals("AuthenticAMD")) l2 = kib(field(cpuinfo, "cache size", ""));  // AMD reports its L2 there
        boolean detected = l2 > 0;
        return new CpuFeatures(model, vendor, family, modelNumber, flags, bits, detected ? l2 : ASSUMED_L2_BYTES, detected);
    }

    /** The level-2 data or unified cache of cpu0 in bytes, or -1. */
    private static long sysfsL2() {
        Path dir = Path.of("/sys/devices/system/cpu/cpu0/cache");
        for (int i = 0; i < 8; i++) {
            Path index = dir.resolve("index" + i);
            List<String> level = readLines(index.resolve("level"));
            List<String> type = readLines(index.resolve("type"));
            if (level.isEmpty() || type.isEmpty()) continue;
            if (level.get(0).trim().equals("2") && !type.get(0).trim().equals("Instruction")) {
                List<String> size = readLines(index.resolve("size"));
                return size.isEmpty() ? -1 : kib(size.get(0));
            }
        }
        return -1;
    }

    /** "1024 KB", "1024K" or "2M" as bytes, or -1. */
    static long kib(String size) {
        String s = size.trim().toUpperCase(Locale.ROOT).replace("B", "").replace(" ", "");
        if (s.isEmpty()) return -1;
        long unit = s.endsWith("K") ? 1L << 10 : s.endsWith("M") ? 1L << 20 : 1;
        String digits = unit == 1 ? s : s.substring(0, s.length() - 1);
        try {
            return Long.parseLong(digits) * unit;
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static String field(List<String> cpuinfo, String key, String fallback) {
        for (String line : cpuinfo) {
            int colon = line.indexOf(':');
            if (colon > 0 && line.substring(0, colon).trim().equals(key)) return line.substring(colon + 1).trim();
        }
        return fallback;
    }

    private static int parseInt(String s) {
        try {
            return Integer.parseInt(s.trim());
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static List<String> readLines(Path p) {
        try {
            return Files.readAllLines(p);
        } catch (IOException | SecurityException e) {
            return List.of();
        }
    }

    /**
     * Fails with a clear error when the Java Vector API is not visible: without its incubator module
     * every op class fails to load (each holds its scalar reference beside its vector path), so this is
     * checked once, when a CPU backend is made, never as a NoClassDefFoundError in a forward pass.
     */
    static void requireVectorApi() {
        try {
            Class.forName(VECTOR_MODULE + ".FloatVector", false, CpuFeatures.class.getClassLoader());
        } catch (ClassNotFoundException e) {
            throw new InvalidInputException("the CPU backend needs the Java Vector API, an incubator module the JVM loads "
                    + "only when asked: start java with --add-modules " + VECTOR_MODULE
                    + " (the scalar path, -Dclip.cpu.vector=false, needs it too)");
        }
    }
}
