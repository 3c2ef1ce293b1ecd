package org.clipj.cli;

import org.clipj.io.Checkpoint;
import org.clipj.io.Checkpoints;
import org.clipj.model.ClipConfig;
import org.clipj.runtime.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/** {@code clip info}: what a checkpoint holds, without running it. */
@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Show a checkpoint's inferred config, parameter count, dtypes and naming.")
public final class InfoCommand extends CliCommand {
    @Option(names = "--model", required = true, paramLabel = "M", description = "Checkpoint file or folder.")
    Path model;

    @Override
    public Integer call() {
        Checkpoint checkpoint = Checkpoints.load(model);
        ClipConfig config = ClipConfig.infer(checkpoint.tensors());
        long parameters = 0;
        Map<String, Long> dtypes = new TreeMap<>();
        for (Tensor t : checkpoint.tensors().values()) {
            parameters += t.numel();
            dtypes.merge(t.dtype().name(), t.numel(), Long::sum);
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("model", model.toString());
        result.put("format", checkpoint.format().name().toLowerCase());
        result.put("naming", checkpoint.naming().name().toLowerCase());
        result.put("architecture", config.isVit() ? "VisionTransformer" : "ModifiedResNet");
        result.put("config", config);
        result.put("tensors", checkpoint.tensors().size());
        result.put("parameters", parameters);
        result.put("dtypes", dtypes);
        emitJson(result);
        err().printf("%s: %s, %s naming, %s, %,d parameters in %d tensors %s%n", model, result.get("format"),
                result.get("naming"), result.get("architecture"), parameters, checkpoint.tensors().size(), dtypes);
        err().println("config: " + config);
        return 0;
    }
}
