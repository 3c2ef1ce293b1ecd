package org.clipj.cli;

import org.clipj.io.Checkpoint;
import org.clipj.io.StoredTensor;
import org.clipj.model.ClipConfig;
import org.clipj.model.OpenClipZoo;
import org.clipj.model.ResolvedModel;
import org.clipj.runtime.InvalidInputException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/** {@code clip info}: what a checkpoint holds and which architecture it loads as, without running it. */
@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Show a checkpoint's architecture (and where it came from), the open_clip names matching its"
                + " tensors, its preprocessing, parameter count, dtypes and naming; --arch-list lists the known names.")
public final class InfoCommand extends CliCommand {
    @Option(names = "--model", paramLabel = "M", description = "Checkpoint file or folder.")
    Path model;

    @Option(names = "--arch", paramLabel = "NAME", description = "Architecture by name (as the other commands' --arch).")
    String arch;

    @Option(names = "--arch-list", description = "List the architecture names clipj builds (OpenAI's and open_clip's).")
    boolean archList;

    @Override
    public Integer call() {
        if (archList) {
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("openai", ClipConfig.names());
            result.put("open_clip", OpenClipZoo.names());
            emitJson(result);
            err().println("OpenAI: " + String.join(", ", ClipConfig.names()));
            err().println("open_clip: " + String.join(", ", OpenClipZoo.names()));
            return 0;
        }
        if (model == null) {
            throw new InvalidInputException("--model is required (or --arch-list)");
        }
        ResolvedModel resolved = ResolvedModel.resolve(model, arch);
        Checkpoint checkpoint = resolved.checkpoint();
        ClipConfig config = resolved.config();
        long parameters = 0;
        Map<String, Long> dtypes = new TreeMap<>();
        for (StoredTensor t : checkpoint.stored().values()) {
            parameters += t.numel();
            dtypes.merge(t.dtype().name(), t.numel(), Long::sum);
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("model", model.toString());
        result.put("weights", checkpoint.path().toString());
        result.put("format", checkpoint.format().name().toLowerCase());
        result.put("naming", checkpoint.naming().name().toLowerCase());
        result.put("architecture", config.isVit() ? "VisionTransformer" : "ModifiedResNet");
        result.put("config_source", resolved.configSource());
        result.put("config", config);
        result.put("zoo_matches", resolved.zooMatches());
        result.put("preprocess", resolved.preprocess().describe());
        result.put("warnings", resolved.warnings());
        result.put("tensors", checkpoint.stored().size());
        result.put("parameters", parameters);
        result.put("dtypes", dtypes);
        emitJson(result);
        resolved.warnings().forEach(w -> err().println("warning: " + w));
        err().printf("%s: %s, %s naming, %s, %,d parameters in %d tensors %s%n", checkpoint.path(), result.get("format"),
                result.get("naming"), result.get("architecture"), parameters, checkpoint.stored().size(), dtypes);
        err().println("architecture: " + config.name() + " from " + resolved.configSource());
        err().println("config: " + config);
        List<String> matches = resolved.zooMatches();
        err().println("open_clip names matching the tensors: " + (matches.isEmpty() ? "none" : String.join(", ", matches)));
        err().println("preprocessing: " + resolved.preprocess().describe());
        return 0;
    }
}
