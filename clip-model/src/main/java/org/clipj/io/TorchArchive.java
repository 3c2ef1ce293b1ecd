package org.clipj.io;

import org.clipj.io.Unpickler.Global;
import org.clipj.io.Unpickler.StorageRef;
import org.clipj.io.Unpickler.TensorRef;
import org.clipj.io.Unpickler.TorchObject;
import org.clipj.io.Unpickler.Tuple;
import org.clipj.runtime.DType;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

/**
 * PyTorch zip archives: {@code torch.save} files ({@code <archive>/data.pkl} holding a state dict,
 * {@code <archive>/data/<key>} raw storages, optional {@code <archive>/byteorder}) and TorchScript
 * archives (the same layout plus {@code code/} and {@code constants.pkl}; data.pkl holds the
 * {@code __torch__.*} module graph). The pickle is read with {@link Unpickler}, the tensors found in
 * it are named by their attribute path and every storage and view is checked against the archive;
 * only then are tensors read, each when it is asked for ({@link StoredTensor}): copied straight from
 * its stored entry (torch.save never compresses) into its own array by positional reads of the file
 * ({@link CheckedFile}), so neither the whole checkpoint nor the file's pages stay resident.
 */
final class TorchArchive {
    /** What an archive holds: its kind and its tensors by (raw) name, in pickle order, read when asked. */
    record Contents(boolean torchScript, Map<String, StoredTensor> tensors) {
    }

    private static final long MAX_PICKLE = 1L << 30;

    private TorchArchive() {
    }

    /**
     * Parses and checks the archive; the tensors whose name {@code keep} accepts are read when asked, the
     * others never.
     */
    static Contents read(Path file, Predicate<String> keep) {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ); Arena arena = Arena.ofConfined()) {
            CheckedFile checked = CheckedFile.of(file, channel);
            ZipIndex zip = ZipIndex.read(channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena), file);
            String prefix = archivePrefix(zip, file);
            boolean torchScript = zip.get(prefix + "constants.pkl") != null || hasCodeFolder(zip, prefix);
            ByteOrder order = byteOrder(zip, prefix, file);
            String pickleName = prefix + "data.pkl";
            byte[] pickle = zip.bytes(zip.get(pickleName), MAX_PICKLE);
            Object root = Unpickler.load(pickle, file + " (" + pickleName + ")", pid -> storageRef(pid, file));
            Map<String, TensorRef> refs = new LinkedHashMap<>();
            collect(stateDictRoot(root, file), "", refs, Collections.newSetFromMap(new IdentityHashMap<>()), file);
            refs.keySet().removeIf(name -> !keep.test(name));
            return new Contents(torchScript, stored(checked, zip, prefix, order, refs, file));
        } catch (IOException e) {
            throw new InvalidInputException(file + ": cannot read the zip archive: " + e.getMessage(), e);
        }
    }

    // The single top-level folder that holds data.pkl (its name is whatever torch.save was given).
    private static String archivePrefix(ZipIndex zip, Path file) {
        List<String> found = new ArrayList<>();
        for (ZipIndex.Entry entry : zip.entries()) {
            String name = entry.name();
            int slash = name.indexOf('/');
            if (name.endsWith("/data.pkl") && slash == name.length() - "/data.pkl".length()) {
                found.add(name.substring(0, slash + 1));
            }
        }
        if (found.size() != 1) {
            throw new InvalidInputException(file + ": zip archive has " + found.size()
                    + " '<archive>/data.pkl' entries " + found + " (expected one: not a PyTorch checkpoint?)");
        }
        return found.getFirst();
    }

    private static boolean hasCodeFolder(ZipIndex zip, String prefix) {
        return zip.entries().stream().anyMatch(e -> e.name().startsWith(prefix + "code/"));
    }

    private static ByteOrder byteOrder(ZipIndex zip, String prefix, Path file) {
        ZipIndex.Entry entry = zip.get(prefix + "byteorder");
        if (entry == null) {
            return ByteOrder.LITTLE_ENDIAN; // archives written before the file existed are little-endian
        }
        String order = new String(zip.bytes(entry, 16), StandardCharsets.US_ASCII).strip();
        return switch (order) {
            case "little" -> ByteOrder.LITTLE_ENDIAN;
            case "big" -> ByteOrder.BIG_ENDIAN;
            default -> throw new InvalidInputException(file + ": unknown byteorder '" + order + "' in " + entry.name());
        };
    }

    // persistent id ('storage', storage_type, key, location, numel)
    private static StorageRef storageRef(Object pid, Path file) {
        if (pid instanceof Tuple t && t.size() == 5 && "storage".equals(t.get(0)) && Unpickler.isStorageType(t.get(1))
                && t.get(2) instanceof String key && t.get(3) instanceof String location && t.get(4) instanceof Long numel
                && numel >= 0) {
            return new StorageRef(((Global) t.get(1)).name(), key, location, numel);
        }
        throw new InvalidInputException(file + ": unsupported persistent id " + describe(pid) + " in data.pkl");
    }

    private static String describe(Object o) {
        if (o instanceof Tuple t) {
            List<String> parts = new ArrayList<>();
            for (Object item : t.items()) parts.add(describe(item));
            return "(" + String.join(", ", parts) + ")";
        }
        if (o instanceof Global g) return g.qualifiedName();
        if (o instanceof String s) return "'" + s + "'";
        if (o == null || o instanceof Number || o instanceof Boolean) return String.valueOf(o);
        return "<" + o.getClass().getSimpleName() + ">"; // containers may be cyclic: not printed
    }

    // A plain state dict, an open_clip training checkpoint ({"state_dict": ..., "optimizer": ...}) or a module.
    private static Object stateDictRoot(Object root, Path file) {
        if (root instanceof Map<?, ?> m) {
            if (m.get("state_dict") instanceof Map<?, ?> inner) {
                return inner;
            }
            return m;
        }
        if (root instanceof TorchObject) {
            return root;
        }
        throw new InvalidInputException(file + ": data.pkl holds a " + (root == null ? "None" : root.getClass().getSimpleName())
                + ", not a state dict or a TorchScript module");
    }

    // Tensors by dotted attribute path; values that are not tensors (flags, hooks, numbers) are not weights.
    // path holds the containers being walked: a pickle can make a dict contain itself.
    private static void collect(Object node, String name, Map<String, TensorRef> out, Set<Object> path, Path file) {
        if (node instanceof TensorRef ref) {
            if (out.putIfAbsent(name, ref) != null) {
                throw new InvalidInputException(file + ": tensor '" + name + "' appears twice");
            }
            return;
        }
        Map<?, ?> children = node instanceof Map<?, ?> m ? m : node instanceof TorchObject obj ? obj.attributes() : null;
        if (children == null) {
            return;
        }
        if (!path.add(node)) {
            throw new InvalidInputException(file + ": data.pkl contains a cycle at '" + name + "'");
        }
        for (Map.Entry<?, ?> e : children.entrySet()) {
            collect(e.getValue(), join(name, String.valueOf(e.getKey())), out, path, file);
        }
        path.remove(node);
    }

    private static String join(String prefix, String key) {
        return prefix.isEmpty() ? key : prefix + "." + key;
    }

    /** One tensor to copy out of a storage's entry: read from the file when stored, else already inflated (not null). */
    private record Copy(String name, TensorRef ref, DType dtype, ZipIndex.Entry entry, byte[] inflated, boolean contiguous) {
    }

    private static Map<String, StoredTensor> stored(CheckedFile checked, ZipIndex zip, String prefix, ByteOrder order,
                                                    Map<String, TensorRef> refs, Path file) {
        Map<String, List<String>> byStorage = new LinkedHashMap<>();
        for (Map.Entry<String, TensorRef> e : refs.entrySet()) {
            byStorage.computeIfAbsent(e.getValue().storage().key(), k -> new ArrayList<>()).add(e.getKey());
        }
        // Every storage and view is checked before any tensor is read.
        Map<String, Copy> copies = new LinkedHashMap<>();
        for (Map.Entry<String, List<String>> group : byStorage.entrySet()) {
            String key = group.getKey();
            String firstTensor = group.getValue().getFirst();
            ZipIndex.Entry entry = key.contains("/") || key.contains("..") ? null : zip.get(prefix + "data/" + key);
            if (entry == null) {
                throw new InvalidInputException(file + ": tensor '" + firstTensor + "' refers to storage data/" + key
                        + ", which the archive does not contain (truncated or corrupt archive)");
            }
            StorageRef storage = refs.get(firstTensor).storage();
            DType dtype = dtype(storage.storageType());
            long needed = storage.numel() * dtype.byteSize();
            if (entry.size() < needed) {
                throw new InvalidInputException(file + ": storage data/" + key + " of tensor '" + firstTensor + "' has "
                        + entry.size() + " bytes, " + needed + " expected (" + storage.numel() + " " + dtype + ")");
            }
            byte[] inflated = ZipIndex.isStored(entry) ? null : zip.bytes(entry, Integer.MAX_VALUE - 8);
            for (String name : group.getValue()) {
                TensorRef ref = refs.get(name);
                if (!ref.storage().equals(storage)) {
                    throw new InvalidInputException(file + ": tensor '" + name + "' views storage data/" + key
                            + " as " + ref.storage().storageType() + " but another tensor as " + storage.storageType());
                }
                copies.put(name, new Copy(name, ref, dtype, entry, inflated, checkView(ref, file + ": tensor '" + name + "'")));
            }
        }
        Map<String, StoredTensor> inPickleOrder = new LinkedHashMap<>();
        for (String name : refs.keySet()) {
            Copy c = copies.get(name);
            inPickleOrder.put(name, StoredTensor.of(c.dtype(), c.ref().shape(), () -> copyOut(checked, c, order)));
        }
        return inPickleOrder;
    }

    private static DType dtype(String storageType) {
        return switch (storageType) {
            case "FloatStorage" -> DType.F32;
            case "HalfStorage" -> DType.F16;
            case "BFloat16Storage" -> DType.BF16;
            case "LongStorage" -> DType.I64;
            case "IntStorage" -> DType.I32;
            default -> throw new IllegalStateException("storage type outside the allow-list: " + storageType);
        };
    }

    /**
     * Checks that the view {@code ref} (shape, strides, offset) stays inside its storage and fits one CPU
     * array; returns whether it is contiguous.
     */
    private static boolean checkView(TensorRef ref, String where) {
        int[] shape = ref.shape();
        long[] stride = ref.stride();
        long numel = Tensor.numel(shape);
        long last = ref.offset(); // the highest element index the view touches
        boolean contiguous = true;
        long expectedStride = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            if (stride[i] < 0) {
                throw new InvalidInputException(where + ": negative stride " + Arrays.toString(stride));
            }
            try {
                last = Math.addExact(last, Math.multiplyExact(shape[i] - 1L, stride[i]));
            } catch (ArithmeticException overflow) {
                throw new InvalidInputException(where + ": stride " + Arrays.toString(stride) + " overflows");
            }
            if (shape[i] != 1 && stride[i] != expectedStride) {
                contiguous = false;
            }
            expectedStride *= shape[i];
        }
        if (numel > 0 && (ref.offset() < 0 || last >= ref.storage().numel())) {
            throw new InvalidInputException(where + ": shape " + Arrays.toString(shape) + ", stride " + Arrays.toString(stride)
                    + " at offset " + ref.offset() + " reaches past its storage of " + ref.storage().numel() + " elements");
        }
        if (numel > Integer.MAX_VALUE - 8) {
            throw new InvalidInputException(where + ": " + numel + " elements are too many for one CPU tensor");
        }
        return contiguous;
    }

    /**
     * Copies a checked view of a storage into a new contiguous tensor: a contiguous view of a stored entry
     * straight from the file, another view of it from its storage's bytes read whole.
     */
    private static Tensor copyOut(CheckedFile file, Copy c, ByteOrder order) {
        if (c.inflated() != null) return copyOut(c, MemorySegment.ofArray(c.inflated()), order);
        String what = "tensor '" + c.name() + "' (" + c.entry().name() + ")";
        long storageBytes = c.ref().storage().numel() * c.dtype().byteSize();
        if (!c.contiguous()) return copyOut(c, MemorySegment.ofArray(file.bytes(c.entry().dataOffset(), storageBytes, what)), order);
        Tensor t = Tensor.zeros(c.dtype(), c.ref().shape());
        file.copy(c.entry().dataOffset() + c.ref().offset() * c.dtype().byteSize(), sourceLayout(c.dtype(), order), t.segment(), what);
        return t;
    }

    private static ValueLayout sourceLayout(DType dtype, ByteOrder order) {
        return switch (dtype) {
            case F32 -> ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(order);
            case F16, BF16 -> ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(order);
            case I32 -> ValueLayout.JAVA_INT_UNALIGNED.withOrder(order);
            case I64 -> ValueLayout.JAVA_LONG_UNALIGNED.withOrder(order);
        };
    }

    private static Tensor copyOut(Copy c, MemorySegment storage, ByteOrder order) {
        TensorRef ref = c.ref();
        int[] shape = ref.shape();
        long[] stride = ref.stride();
        long numel = Tensor.numel(shape);
        DType dtype = c.dtype();
        Tensor t = Tensor.zeros(dtype, shape);
        MemorySegment dst = t.segment();
        ValueLayout src = sourceLayout(dtype, order);
        ValueLayout carrier = src.withOrder(ByteOrder.nativeOrder());
        long size = dtype.byteSize();
        if (c.contiguous()) {
            MemorySegment.copy(storage, src, ref.offset() * size, dst, carrier, 0, numel);
            return t;
        }
        int[] index = new int[shape.length];
        for (long i = 0; i < numel; i++) {
            long element = ref.offset();
            for (int d = 0; d < shape.length; d++) {
                element += index[d] * stride[d];
            }
            MemorySegment.copy(storage, src, element * size, dst, carrier, i * size, 1);
            for (int d = shape.length - 1; d >= 0 && ++index[d] == shape[d]; d--) {
                index[d] = 0;
            }
        }
        return t;
    }
}
