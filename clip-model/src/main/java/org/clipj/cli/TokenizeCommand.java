package org.clipj.cli;

import org.clipj.runtime.InvalidInputException;
import org.clipj.text.ClipTokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/** {@code clip tokenize}: CLIP token ids of texts, as {@code clip.tokenize} returns them. */
@Command(name = "tokenize", mixinStandardHelpOptions = true, description = {
        "Print the CLIP token ids of each TEXT: {\"tokens\": [[...], ...]}, one row of --context ids per text",
        "(start-of-text, BPE ids, end-of-text, zero padding). Use -- before texts that start with '-'."})
public final class TokenizeCommand extends CliCommand {
    static final String VOCAB_ENV = "CLIP_VOCAB";
    /** Environment lookup; tests replace it. */
    static Function<String, String> environment = System::getenv;

    @Option(names = "--vocab", paramLabel = "V",
            description = "BPE vocab: bpe_simple_vocab_16e6.txt.gz, a trained merges file, or a folder with one of them"
                    + " or a Hugging Face vocab.json + merges.txt (default: $" + VOCAB_ENV + ").")
    Path vocab;

    @Option(names = "--context", paramLabel = "N", defaultValue = "" + ClipTokenizer.DEFAULT_CONTEXT,
            description = "Context length (default: ${DEFAULT-VALUE}).")
    int context;

    @Option(names = "--no-truncate", description = "Fail on texts longer than the context instead of truncating them.")
    boolean noTruncate;

    @Parameters(paramLabel = "TEXT", arity = "1..*", description = "Texts to tokenize.")
    List<String> texts;

    @Override
    public Integer call() {
        ClipTokenizer tokenizer = ClipTokenizer.load(vocabPath());
        int[][] tokens = tokenizer.tokenize(texts, context, !noTruncate);
        emitJson(Map.of("tokens", tokens));
        err().println("tokenized " + texts.size() + " text(s), context " + context);
        err().flush();
        return 0;
    }

    private Path vocabPath() {
        if (vocab != null) {
            return vocab;
        }
        String fromEnv = environment.apply(VOCAB_ENV);
        if (fromEnv != null && !fromEnv.isBlank()) {
            return Path.of(fromEnv);
        }
        throw new InvalidInputException("the CLIP BPE vocab is needed: pass --vocab FILE or set " + VOCAB_ENV
                + ". It is bpe_simple_vocab_16e6.txt.gz from openai/CLIP (clip/bpe_simple_vocab_16e6.txt.gz in that"
                + " repository), often next to a checkpoint, or a Hugging Face model folder with vocab.json + merges.txt;"
                + " clipj does not bundle it");
    }
}
