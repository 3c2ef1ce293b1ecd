package org.clipj.cli;

import org.clipj.runtime.Backends;
import picocli.CommandLine;

import java.util.Locale;

/**
 * The {@code --device} value, checked when the command line is parsed so a bad one is a usage error
 * naming the flag. Absent, the command takes {@code clip.backend}, then {@code CLIP_BACKEND}, then auto
 * ({@link Backends#fromEnvironment()}).
 */
public final class DeviceName implements CommandLine.ITypeConverter<String> {
    /** The help text of every command's --device. */
    public static final String DESCRIPTION = "cpu, cuda or auto. Default: the system property clip.backend"
            + " (-Dclip.backend=cpu in CLIP_JAVA_OPTS), else $CLIP_BACKEND, else auto.";

    @Override
    public String convert(String value) {
        String name = value.trim().toLowerCase(Locale.ROOT);
        if (!Backends.NAMES.contains(name)) {
            throw new CommandLine.TypeConversionException("'" + value + "': expected cpu, cuda or auto");
        }
        return name;
    }
}
