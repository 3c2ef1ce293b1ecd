package org.clipj.cli;

import org.clipj.model.Precision;
import org.clipj.runtime.InvalidInputException;
import picocli.CommandLine;

/** The {@code --precision} value, parsed with the command line so a bad one is a usage error naming the flag. */
public final class PrecisionName implements CommandLine.ITypeConverter<Precision> {
    @Override
    public Precision convert(String value) {
        try {
            return Precision.parse(value);
        } catch (InvalidInputException e) {
            throw new CommandLine.TypeConversionException(e.getMessage());
        }
    }
}
