// lsa-eval: long-context accuracy and fidelity of lsa KV selection on a real model (CPU).
//
// RULER-style retrieval tasks (pass key, single needle, multi-key needle with distractors) over a
// real text, and perplexity over its continuation. Each sample is prefilled once, densely; every
// method then starts a fresh lsa session from the same prefill states, so methods differ only in
// how they decode. Writes <results>/<name>.md, a per-sample .tsv and an accuracy-vs-budget plot.
//
//   bash scripts/genesis.sh > results/genesis.txt
//   lsa-eval --text results/genesis.txt [--lengths 2048,4096,8192] [--samples N] ... (--help)
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_args.hpp"
#include "error.hpp"
#include "eval_methods.hpp"
#include "eval_report.hpp"
#include "eval_runner.hpp"
#include "eval_tasks.hpp"
#include "gguf.hpp"
#include "model.hpp"
#include "tokenizer.hpp"

namespace lsa_decode {

void usage_error(const std::string& what) {
  throw DecodeError(what + " (lsa-eval --help lists the options)");
}

namespace {

struct Options {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string text;
  std::string indexer = "examples/indexer/trained/SmolLM2-135M-Instruct.lsa-indexer.gguf";
  std::vector<TaskKind> tasks = {TaskKind::kSingleNeedle, TaskKind::kMultiKey};
  std::vector<int64_t> lengths = {4096, 8192};
  std::vector<double> depths = {0.1, 0.3, 0.5, 0.7, 0.9};
  int32_t samples = 15;
  int32_t keys = 4;
  std::vector<MethodSpec> methods = {
      {MethodKind::kDense, 1},    {MethodKind::kOracle, 1},   {MethodKind::kOracle, 64},
      {MethodKind::kLsa, 1},      {MethodKind::kLsa, 64},     {MethodKind::kLearned, 8},
      {MethodKind::kLearned, 64}, {MethodKind::kRecency, 1}};
  std::vector<double> budgets = {0.10, 0.15};
  std::vector<Setting> settings = {Setting::kPrompt, Setting::kQuestion};
  int32_t max_new = 12;
  int64_t ppl_prefix = 2048;
  int64_t ppl_tokens = 256;
  CacheShape shape;
  uint64_t seed = 20240601;
  int threads = 0;
  std::string results = "results";
  std::string name = "eval";
  bool show_prompts = false;
};

double parse_fraction(const std::string& flag, const std::string& value) {
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || !std::isfinite(v) || v < 0.0 || v > 1.0) {
    usage_error(fmt::format("{} takes fractions in [0, 1] (got '{}')", flag, value));
  }
  return v;
}

template <class T, class F>
std::vector<T> parse_list(const std::string& flag, const std::string& value, F parse_one) {
  std::vector<T> out;
  std::stringstream list(value);
  for (std::string item; std::getline(list, item, ',');) {
    if (item.empty()) continue;
    try {
      out.push_back(parse_one(item));
    } catch (const DecodeError& e) {
      usage_error(fmt::format("{}: {}", flag, e.what()));
    }
  }
  if (out.empty())
    usage_error(fmt::format("{} needs a comma-separated list (got '{}')", flag, value));
  return out;
}

void print_help() {
  fmt::print(
      "lsa-eval: long-context accuracy of lsa KV selection (RULER-style tasks + perplexity)\n\n"
      "  --text PATH            the haystack and perplexity text, one passage per line; Genesis:\n"
      "                         bash scripts/genesis.sh > results/genesis.txt (required)\n"
      "  -m, --model PATH       GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
      "  --indexer PATH         the learned indexer of learned-iN methods (default\n"
      "                         examples/indexer/trained/SmolLM2-135M-Instruct.lsa-indexer.gguf)\n"
      "  --tasks LIST           passkey,single,multikey (default single,multikey)\n"
      "  --lengths LIST         context lengths in tokens, prompt + answer (default 4096,8192)\n"
      "  --depths LIST          needle depths, fractions of the haystack (default "
      "0.1,0.3,0.5,0.7,0.9);\n"
      "                         consecutive samples of the run take consecutive depths\n"
      "  --samples N            samples per (task, length) (default 15; 0: perplexity only)\n"
      "  --keys N               multikey: needles, the asked one included (default 4)\n"
      "  --methods LIST         dense, quest, recency, random, and with a refresh interval N:\n"
      "                         lsa-iN (bound scorer), learned-iN (the trained indexer),\n"
      "                         oracle-iN (the dense run's next N steps), random-iN (default\n"
      "                         dense,oracle-i1,oracle-i64,lsa-i1,lsa-i64,learned-i8,learned-i64,\n"
      "                         recency)\n"
      "  --budgets LIST         resident pages as fractions of the context's pages, sink and "
      "recent\n"
      "                         included (default 0.10,0.15)\n"
      "  --settings LIST        prompt (question prefilled), question (question decoded) (default "
      "both)\n"
      "  --max-new N            answer tokens generated at most (default 12)\n"
      "  --ppl-prefix N         perplexity: tokens prefilled dense (default 2048; 0 skips "
      "perplexity)\n"
      "  --ppl-tokens N         perplexity: continuation tokens scored (default 256)\n"
      "  --chunk-tokens N       lsa chunk size (default 16)\n"
      "  --page-chunks N        chunks per page (default 1)\n"
      "  --sink-chunks N        first chunks always resident, part of the budget (default 1)\n"
      "  --recent-chunks N      last chunks always resident, part of the budget (default 4)\n"
      "  --kv f32|f16           how KV pages store K and V (default f32)\n"
      "  --seed N               task generator seed (default 20240601)\n"
      "  --threads N            worker threads (default: hardware threads)\n"
      "  --results DIR          output directory (default results)\n"
      "  --name NAME            report name: DIR/NAME.md, DIR/NAME-samples.tsv, "
      "DIR/NAME-accuracy.png\n"
      "                         (default eval)\n"
      "  --show-prompts         print each sample's prompt text (context | question) to stderr\n");
}

Options parse(int argc, char** argv) {
  Options o;
  for (ArgReader args(argc, argv); args.next();) {
    const std::string& a = args.option();
    if (a == "-h" || a == "--help") {
      print_help();
      std::exit(0);
    } else if (a == "-m" || a == "--model") {
      o.model = args.value();
    } else if (a == "--text") {
      o.text = args.value();
    } else if (a == "--indexer") {
      o.indexer = args.value();
    } else if (a == "--tasks") {
      o.tasks =
          parse_list<TaskKind>(a, args.value(), [](const std::string& s) { return parse_task(s); });
    } else if (a == "--lengths") {
      o.lengths = parse_list<int64_t>(
          a, args.value(), [&](const std::string& s) { return parse_int(a, s, 64, 1 << 24); });
    } else if (a == "--depths") {
      o.depths = parse_list<double>(a, args.value(),
                                    [&](const std::string& s) { return parse_fraction(a, s); });
    } else if (a == "--samples") {
      o.samples = static_cast<int32_t>(parse_int(a, args.value(), 0, 100000));
    } else if (a == "--keys") {
      o.keys = static_cast<int32_t>(parse_int(a, args.value(), 2, 40));
    } else if (a == "--methods") {
      o.methods = parse_list<MethodSpec>(a, args.value(),
                                         [](const std::string& s) { return parse_method(s); });
    } else if (a == "--budgets") {
      o.budgets = parse_list<double>(a, args.value(), [&](const std::string& s) {
        const double b = parse_fraction(a, s);
        if (b <= 0.0) usage_error(fmt::format("{} must be > 0 (got '{}')", a, s));
        return b;
      });
    } else if (a == "--settings") {
      o.settings =
          parse_list<Setting>(a, args.value(), [](const std::string& s) { return parse_setting(s); });
    } else if (a == "--max-new") {
      o.max_new = static_cast<int32_t>(parse_int(a, args.value(), 1, 1024));
    } else if (a == "--ppl-prefix") {
      o.ppl_prefix = parse_int(a, args.value(), 0, 1 << 24);
    } else if (a == "--ppl-tokens") {
      o.ppl_tokens = parse_int(a, args.value(), 1, 1 << 20);
    } else if (a == "--chunk-tokens") {
      o.shape.chunk_tokens = static_cast<int32_t>(parse_int(a, args.value(), 1, 4096));
    } else if (a == "--page-chunks") {
      o.shape.page_chunks = static_cast<int32_t>(parse_int(a, args.value(), 1, 4096));
    } else if (a == "--sink-chunks") {
      o.shape.sink_chunks = static_cast<int32_t>(parse_int(a, args.value(), 0, 1 << 20));
    } else if (a == "--recent-chunks") {
      o.shape.recent_chunks = static_cast<int32_t>(parse_int(a, args.value(), 0, 1 << 20));
    } else if (a == "--kv") {
      o.shape.kv = parse_kv_type(args.value());
    } else if (a == "--seed") {
      o.seed = static_cast<uint64_t>(parse_int(a, args.value(), 0, INT64_MAX));
    } else if (a == "--threads") {
      o.threads = static_cast<int>(parse_int(a, args.value(), 1, 256));
    } else if (a == "--show-prompts") {
      o.show_prompts = true;
    } else if (a == "--results") {
      o.results = args.value();
    } else if (a == "--name") {
      o.name = args.value();
      if (o.name.empty() || o.name.find_first_of("/\\'\"") != std::string::npos) {
        usage_error(fmt::format("--name must be a plain file name (got '{}')", o.name));
      }
    } else {
      usage_error(fmt::format("unknown option '{}'", a));
    }
  }
  if (o.text.empty()) {
    usage_error(
        "--text PATH is required (bash scripts/genesis.sh > results/genesis.txt writes Genesis)");
  }
  if (o.results.find('\'') != std::string::npos) usage_error("--results must not contain a quote");
  if (o.samples == 0 && o.ppl_prefix == 0)
    usage_error("--samples 0 and --ppl-prefix 0 leave nothing to run");
  return o;
}

std::string command_line(int argc, char** argv) {
  std::string cmd;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (!cmd.empty()) cmd += ' ';
    cmd += a.find_first_of(" \t'\"$") == std::string::npos ? a : fmt::format("'{}'", a);
  }
  return cmd;
}

template <class T, class F>
std::string join(const std::vector<T>& v, F f) {
  std::string s;
  for (const T& x : v) s += (s.empty() ? "" : ", ") + f(x);
  return s;
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const auto start = std::chrono::steady_clock::now();
  const int threads = o.threads > 0
                          ? o.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const GgufFile file = GgufFile::open(o.model);
  const Tokenizer tok(file);
  const LlamaModel model(file, threads);
  const Haystack haystack(tok, o.text);
  const int64_t longest = *std::max_element(o.lengths.begin(), o.lengths.end());
  if (longest > model.config().context_length) {
    fmt::print(stderr,
               "lsa-eval: warning: length {} exceeds the model's trained context ({} tokens)\n",
               longest, model.config().context_length);
  }
  const std::vector<Method> methods = method_grid(o.methods, o.budgets);
  fmt::print(stderr, "lsa-eval: {} threads; text '{}' ({} lines, {} tokens); {} methods: {}\n",
             threads, o.text, haystack.num_pieces(), haystack.num_tokens(), methods.size(),
             join(methods, [](const Method& m) { return m.label(); }));

  EvalContext ctx{model, tok};
  const auto learned = [](const MethodSpec& m) { return m.kind == MethodKind::kLearned; };
  if (std::any_of(o.methods.begin(), o.methods.end(), learned)) {
    ctx.indexer = IndexerFile::load(o.indexer);
    // A wrong indexer, or a shape its chunks do not divide, is refused before any run.
    const auto first = std::find_if(methods.begin(), methods.end(),
                                    [](const Method& m) { return m.kind == MethodKind::kLearned; });
    (void)make_cache_config(
        model.config(), cache_options(*first, longest + o.max_new, o.shape, nullptr, ctx.indexer));
  }
  ctx.shape = o.shape;
  ctx.max_new = o.max_new;
  ctx.log = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };

  EvalRun run;
  run.command = command_line(argc, argv);
  run.methods = methods;
  run.settings = o.settings;
  run.tasks = o.tasks;
  run.lengths = o.lengths;
  int64_t counter = 0;
  const int64_t total = static_cast<int64_t>(o.lengths.size() * o.tasks.size()) * o.samples;
  for (const int64_t length : o.lengths) {
    for (const TaskKind task : o.tasks) {
      for (int32_t i = 0; i < o.samples; ++i) {
        SampleSpec spec;
        spec.task = task;
        spec.context_tokens = length;
        spec.depth = o.depths[static_cast<size_t>(counter % static_cast<int64_t>(o.depths.size()))];
        spec.index = i;
        spec.seed = o.seed;
        spec.max_new = o.max_new;
        spec.num_keys = o.keys;
        ++counter;
        SampleRecord record;
        record.sample = make_sample(tok, haystack, spec);
        fmt::print(
            stderr, "[{}/{}] {} {} depth {:.0f}%: answer {}{} ({:.0f} s elapsed)\n", counter, total,
            task_name(task), length_label(length), 100.0 * spec.depth, record.sample.answer,
            record.sample.key.empty() ? "" : " for " + record.sample.key, seconds_since(start));
        if (o.show_prompts) {
          fmt::print(stderr, "---- context ({} tokens)\n{}\n---- question ({} tokens)\n{}\n----\n",
                     record.sample.context.size(), tok.decode(record.sample.context),
                     record.sample.question.size(), tok.decode(record.sample.question));
        }
        record.outcome = run_sample(ctx, record.sample, methods, o.settings);
        record.sample.context.clear();
        record.sample.question.clear();
        run.samples.push_back(std::move(record));
      }
    }
  }
  if (o.ppl_prefix > 0) {
    fmt::print(stderr, "perplexity: {} tokens after a dense prefill of {} ({:.0f} s elapsed)\n",
               o.ppl_tokens, o.ppl_prefix, seconds_since(start));
    const std::vector<int32_t> text =
        haystack.tokens(0, std::min(haystack.num_tokens(), o.ppl_prefix + o.ppl_tokens + 1));
    run.perplexity = run_perplexity(ctx, text, o.ppl_prefix, o.ppl_tokens, methods);
    run.perplexity_tokens = o.ppl_tokens;
  }
  run.seconds = seconds_since(start);

  const ModelConfig& mc = model.config();
  run.facts = {
      {"model",
       fmt::format("`{}` ({} layers, d={}, {} heads / {} KV heads, trained context {})", o.model,
                   mc.num_layers, mc.d_model, mc.num_heads, mc.num_kv_heads, mc.context_length)},
      {"text", fmt::format("`{}` ({} lines, {} tokens)", o.text, haystack.num_pieces(),
                           haystack.num_tokens())},
      {"samples",
       fmt::format("{} per (task, length); needle depths {} taken in turn by consecutive samples; "
                   "multikey: {} needles; seed {}",
                   o.samples,
                   join(o.depths, [](double d) { return fmt::format("{:g}%", 100 * d); }), o.keys,
                   o.seed)},
      {"decoding",
       fmt::format("greedy, up to {} answer tokens; lsa chunks of {} tokens, {} chunk(s) per page, "
                   "sink {} chunk(s), recent {} chunk(s), {} KV; budgets are fractions of the "
                   "pages of prompt + answer, sink and recent pages included",
                   o.max_new, o.shape.chunk_tokens, o.shape.page_chunks, o.shape.sink_chunks,
                   o.shape.recent_chunks, kv_name(o.shape.kv))},
      {"methods",
       "`dense` all pages (the reference; its run records each step's attention); `oracle-iN` "
       "the pages the dense run's next N steps attend to most (all layers and heads), chosen every "
       "N steps: the ceiling of any N-step lookahead at the budget; `lsa-iN` bound (Quest min/max) "
       "scorer refreshed every N steps with the previous token's query (selection before the "
       "step, off the decode path); `learned-iN` the trained lookahead indexer (docs/indexer.md) "
       "refreshed every N steps, also with the previous token's state; `quest` bound scorer "
       "every step with the current token's "
       "query (two decode passes); `recency` sink + most recent pages; `random-iN` sink + recent "
       "+ random pages redrawn every N steps (`random`: every 64)"},
      {"machine",
       fmt::format("{} threads (decode tokens/s are side by side in this run)", threads)},
  };
  if (ctx.indexer) {
    const CacheOptions learned =
        with_chunk_tokens(cache_options(Method{}, 1, o.shape), ctx.indexer->chunk_tokens());
    run.facts.push_back(
        {"indexer",
         fmt::format("`{}` (learned-iN methods): its chunks of {} tokens, {} per page, sink {} and "
                     "recent {} chunks: the pages and token spans above",
                     o.indexer, learned.chunk_tokens, learned.page_chunks, learned.sink_chunks,
                     learned.recent_chunks)});
  }
  const ReportFiles files = write_report(run, o.results, o.name);
  fmt::print("{}", render_markdown(run, o.name));
  fmt::print(stderr, "wrote {}, {}, {}, {}\n", files.markdown, files.samples, files.data,
             files.script);
  if (!files.plot.empty()) {
    fmt::print(stderr, "plot: {}\n", files.plot);
  } else {
    fmt::print(stderr, "lsa-eval: {}\n", files.plot_note);
  }
  return 0;
}

}  // namespace
}  // namespace lsa_decode

int main(int argc, char** argv) {
  try {
    return lsa_decode::run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "lsa-eval: {}\n", e.what());
    return 1;
  }
}
