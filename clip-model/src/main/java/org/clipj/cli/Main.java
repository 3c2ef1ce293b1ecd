package org.clipj.cli;

import org.clipj.io.AtomicFiles;
import org.clipj.runtime.InvalidInputException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;

/**
 * The {@code clip} command. Every command prints a human summary on stderr and JSON on stdout
 * (or {@code --out}). Errors are one line {@code error: ...}; exit 2 for bad input or a cause on
 * the user's side of a file (full disk, read-only or missing folder, permission), 1 for an internal
 * failure; a stack trace only with {@code --debug}. An interrupted {@code clip train} exits 130
 * (SIGINT) or 143 (SIGTERM).
 */
@Command(name = "clip", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "CLIP on the JVM: embed, classify zero-shot, train, evaluate.",
        subcommands = {CommandLine.HelpCommand.class, DemoCommand.class, EmbedCommand.class, ZeroShotCommand.class,
                TokenizeCommand.class, TrainCommand.class, InfoCommand.class, EvalCommand.class, OverlapCommand.class,
                ServeCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
    }

    /** Runs one command line with the given streams and returns its exit status (for tests). */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cli = commandLine();
        cli.setOut(out);
        cli.setErr(err);
        boolean debug = java.util.Arrays.asList(args).contains("--debug");
        cli.setParameterExceptionHandler((ex, a) -> {
            err.println("error: " + ex.getMessage());
            err.flush();
            return 2;
        });
        cli.setExecutionExceptionHandler((ex, c, parsed) -> {
            if (debug) {
                ex.printStackTrace(err);
            }
            err.println("error: " + describe(ex));
            err.flush();
            return isBadInput(ex) ? 2 : 1;
        });
        int status = cli.execute(args);
        out.flush();
        err.flush();
        return status;
    }

    static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new Main());
        cli.setCaseInsensitiveEnumValuesAllowed(true);
        return cli;
    }

    private static boolean isBadInput(Throwable ex) {
        for (Throwable t = ex; t != null; t = t.getCause()) {
            if (t instanceof InvalidInputException || t instanceof NoSuchFileException
                    || t instanceof CommandLine.ParameterException
                    || t instanceof IOException io && AtomicFiles.userSideReason(io) != null) {
                return true;
            }
        }
        return false;
    }

    private static String describe(Throwable ex) {
        for (Throwable t = ex; t != null; t = t.getCause()) {
            if (t instanceof InvalidInputException) {
                return t.getMessage();
            }
            if (t instanceof NoSuchFileException nsf) {
                return "no such file: " + nsf.getFile();
            }
            if (t instanceof IOException io && AtomicFiles.userSideReason(io) != null) {
                return (io instanceof FileSystemException fse && fse.getFile() != null ? fse.getFile() + ": " : "")
                        + AtomicFiles.userSideReason(io);
            }
        }
        if (ex instanceof UncheckedIOException u && u.getCause() != null && !u.getMessage().equals(u.getCause().toString())) {
            return "internal: " + u.getMessage() + " (run with --debug for the stack trace)";
        }
        Throwable root = ex instanceof UncheckedIOException && ex.getCause() != null ? ex.getCause() : ex;
        String message = root.getMessage();
        return "internal: " + root.getClass().getSimpleName() + (message == null ? "" : ": " + message)
                + " (run with --debug for the stack trace)";
    }

    @Override
    public void run() {
        StringWriter usage = new StringWriter();
        spec.commandLine().usage(new PrintWriter(usage));
        spec.commandLine().getErr().print(usage);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[]{"clipj " + (v == null ? "dev" : v) + " on Java " + Runtime.version()};
        }
    }
}
