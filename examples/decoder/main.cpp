// lsa-decode: greedy decoding of a Llama-family GGUF model on the CPU with an lsa KV cache.
//
//   lsa-decode [-m model.gguf] [-p prompt | -f prompt.txt] [-n new_tokens] [--dense | --budget B]
//              [--chunk-tokens N] [--page-chunks N] [--interval N]
//              [--scorer bound|centroid|learned|random|recency] [--indexer FILE]
//              [--sink-chunks N] [--recent-chunks N] [--kv f32|f16]
//              [--threads N] [--raw] [--ids I,J,..] [--top5] [--show-ids]
//              [--perplexity text.txt --tokens N]
//              [--bench [--bench-prompt N] [--bench-gen N] [--bench-depth D,D,..]]
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_args.hpp"
#include "error.hpp"
#include "gguf.hpp"
#include "model.hpp"
#include "ops/targets.hpp"
#include "session.hpp"
#include "tokenizer.hpp"

namespace lsa_decode {

void usage_error(const std::string& what) {
  throw DecodeError(what + " (lsa-decode --help lists the options)");
}

namespace {

struct Options {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string prompt = "Explain in two sentences why the sky is blue.";
  std::vector<int32_t> ids;  // --ids: the prompt as token ids (no tokenizer, no template)
  int32_t max_new = 64;
  bool raw = false;
  bool top5 = false;
  bool show_ids = false;
  std::string perplexity_file;
  int64_t perplexity_tokens = 4096;
  int threads = 0;
  bool bench = false;
  int64_t bench_prompt = 4096;
  int64_t bench_gen = 64;
  std::vector<int64_t> bench_depths = {4096, 8128};
  std::string indexer = "examples/indexer/trained/SmolLM2-135M-Instruct.lsa-indexer.gguf";
  CacheOptions cache;
};

double parse_double(const std::string& flag, const std::string& value) {
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || !std::isfinite(v) || v <= 0.0) {
    usage_error(fmt::format("{} must be a positive number (got '{}')", flag, value));
  }
  return v;
}

void print_help() {
  fmt::print(
      "lsa-decode: greedy decoding with an lsa sparse KV cache (Llama-family GGUF, CPU)\n\n"
      "  -m, --model PATH       GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf;\n"
      "                         scripts/fetch_model.sh fetches it)\n"
      "  -p, --prompt TEXT      user prompt (wrapped in the chat template unless --raw)\n"
      "  -f, --file PATH        read the prompt from a file\n"
      "  -n, --max-new N        tokens to generate (default 64)\n"
      "      --raw              no chat template\n"
      "      --ids I,J,...      the prompt as token ids (no tokenizer, no template)\n"
      "      --dense            every KV page resident (the reference)\n"
      "      --budget B         resident pages: a fraction of the context's pages (0 < B <= 1)\n"
      "                         or a page count (B > 1); default 0.1\n"
      "      --chunk-tokens N   tokens per scored chunk (default 16; the learned scorer uses its\n"
      "                         indexer's chunks, keeping the page, sink and recent tokens)\n"
      "      --page-chunks N    chunks per page (default 1)\n"
      "      --interval N       decode steps between refreshes (default 64)\n"
      "      --scorer NAME      bound (Quest min/max keys, default), centroid, learned (the trained\n"
      "                         lookahead indexer, --indexer), or the baselines random and recency\n"
      "      --indexer PATH     the learned indexer's file (default\n"
      "                         examples/indexer/trained/SmolLM2-135M-Instruct.lsa-indexer.gguf)\n"
      "      --sink-chunks N    first chunks always resident (default 1)\n"
      "      --recent-chunks N  last chunks always resident (default 4)\n"
      "      --kv f32|f16       how KV pages store K and V: f32 (default, the reference) or f16\n"
      "                         (half what attention reads and what a recall copies)\n"
      "      --threads N        worker threads (default: hardware threads)\n"
      "      --top5             print the top-5 next-token ids and logits after the prompt\n"
      "      --show-ids         print the prompt's token ids\n"
      "      --perplexity PATH  dense perplexity of the first --tokens N tokens of a text file\n"
      "      --bench            speed on synthetic tokens, like llama-bench: prefill tok/s of\n"
      "                         --bench-prompt N tokens (default 4096; 0: none), and decode\n"
      "                         tok/s of --bench-gen N tokens (default 64) after each of\n"
      "                         --bench-depth D,D,.. tokens (default 4096,8128), with the cache\n"
      "                         options given\n"
      "\nLSA_DECODE_TARGET=AVX3|AVX2|SCALAR pins the SIMD kernels (default: the best the CPU "
      "has).\n");
}

Options parse(int argc, char** argv) {
  Options o;
  // 4 recent chunks (64 tokens): what the learned indexer was trained with, and what an interval
  // of 64 appends stays visible between refreshes.
  o.cache.recent_chunks = 4;
  for (ArgReader args(argc, argv); args.next();) {
    const std::string& a = args.option();
    if (a == "-h" || a == "--help") {
      print_help();
      std::exit(0);
    } else if (a == "-m" || a == "--model") {
      o.model = args.value();
    } else if (a == "-p" || a == "--prompt") {
      o.prompt = args.value();
    } else if (a == "-f" || a == "--file") {
      o.prompt = read_file(args.value());
    } else if (a == "-n" || a == "--max-new") {
      o.max_new = static_cast<int32_t>(parse_int(a, args.value(), 0, 1 << 20));
    } else if (a == "--ids") {
      std::stringstream list(args.value());
      for (std::string id; std::getline(list, id, ',');) {
        o.ids.push_back(static_cast<int32_t>(parse_int("--ids", id, 0, (int64_t{1} << 31) - 1)));
      }
    } else if (a == "--raw") {
      o.raw = true;
    } else if (a == "--top5") {
      o.top5 = true;
    } else if (a == "--show-ids") {
      o.show_ids = true;
    } else if (a == "--dense") {
      o.cache.dense = true;
    } else if (a == "--budget") {
      const double b = parse_double(a, args.value());
      if (b <= 1.0) {
        o.cache.budget_fraction = b;
      } else {
        o.cache.budget_pages = static_cast<int32_t>(parse_int(a, fmt::format("{}", std::llround(b)), 1, 1 << 24));
      }
    } else if (a == "--chunk-tokens") {
      o.cache.chunk_tokens = static_cast<int32_t>(parse_int(a, args.value(), 1, 4096));
    } else if (a == "--page-chunks") {
      o.cache.page_chunks = static_cast<int32_t>(parse_int(a, args.value(), 1, 4096));
    } else if (a == "--interval") {
      o.cache.interval = static_cast<int32_t>(parse_int(a, args.value(), 1, 1 << 20));
    } else if (a == "--scorer") {
      o.cache.scorer = parse_scorer(args.value());
    } else if (a == "--indexer") {
      o.indexer = args.value();
    } else if (a == "--sink-chunks") {
      o.cache.sink_chunks = static_cast<int32_t>(parse_int(a, args.value(), 0, 1 << 20));
    } else if (a == "--recent-chunks") {
      o.cache.recent_chunks = static_cast<int32_t>(parse_int(a, args.value(), 0, 1 << 20));
    } else if (a == "--kv") {
      o.cache.kv = parse_kv_type(args.value());
    } else if (a == "--threads") {
      o.threads = static_cast<int>(parse_int(a, args.value(), 1, 256));
    } else if (a == "--bench") {
      o.bench = true;
    } else if (a == "--bench-prompt") {
      o.bench_prompt = parse_int(a, args.value(), 0, 1 << 24);
    } else if (a == "--bench-gen") {
      o.bench_gen = parse_int(a, args.value(), 1, 1 << 24);
    } else if (a == "--bench-depth") {
      o.bench_depths.clear();
      std::stringstream list(args.value());
      for (std::string d; std::getline(list, d, ',');) {
        o.bench_depths.push_back(parse_int(a, d, 1, 1 << 24));
      }
    } else if (a == "--perplexity") {
      o.perplexity_file = args.value();
    } else if (a == "--tokens") {
      o.perplexity_tokens = parse_int(a, args.value(), 2, 1 << 24);
    } else {
      usage_error(fmt::format("unknown option '{}'", a));
    }
  }
  return o;
}

// Progress lines rewrite themselves with carriage returns: only for a person at a terminal, not
// for logs.
bool show_progress() {
  static const bool tty = isatty(STDERR_FILENO) != 0;
  return tty;
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

void print_top5(const Tokenizer& tok, const float* logits, int32_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + 5, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  fmt::print("top-5 next tokens:\n");
  for (int i = 0; i < 5; ++i) {
    fmt::print("  {:6d}  {:10.5f}  {:?}\n", ids[i], logits[ids[i]], tok.token_text(ids[i]));
  }
}

int perplexity(const Options& o, const LlamaModel& model, const Tokenizer& tok) {
  std::vector<int32_t> ids = tok.encode(read_file(o.perplexity_file), /*parse_special=*/false);
  if (static_cast<int64_t>(ids.size()) > o.perplexity_tokens) ids.resize(static_cast<size_t>(o.perplexity_tokens));
  if (ids.size() < 2) throw DecodeError(fmt::format("'{}' has fewer than 2 tokens", o.perplexity_file));
  std::vector<int64_t> positions(ids.size() - 1);
  std::iota(positions.begin(), positions.end(), 0);
  std::vector<TokenState> states;
  double nll = 0.0;
  const auto t0 = std::chrono::steady_clock::now();
  model.prefill(
      ids, states, positions,
      [&](int64_t p, std::span<const float> row) {
        const float mx = *std::max_element(row.begin(), row.end());
        double sum = 0.0;
        for (float x : row) sum += std::exp(double(x) - mx);
        nll -= double(row[ids[p + 1]]) - mx - std::log(sum);
      },
      [&](int done, int total) {
        if (show_progress())
          fmt::print(stderr, "\rprefill {} tokens: layer {}/{}", ids.size(), done, total);
      },
      nullptr, o.cache.kv);
  if (show_progress()) fmt::print(stderr, "\n");
  const double n = static_cast<double>(positions.size());
  fmt::print(
      "perplexity over {} tokens of '{}' (dense, {} KV, {} predictions): {:.4f} (mean NLL {:.5f}) "
      "in {:.1f} s\n",
      ids.size(), o.perplexity_file, kv_name(o.cache.kv), positions.size(), std::exp(nll / n),
      nll / n, seconds_since(t0));
  return 0;
}

// A fixed pseudo-random sequence of `n` ordinary token ids (the bench's synthetic text, as
// llama-bench uses random ids).
std::vector<int32_t> bench_tokens(int64_t n, int32_t vocab, uint32_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) {
    seed = seed * 1664525u + 1013904223u;
    id = static_cast<int32_t>((seed >> 8) % static_cast<uint32_t>(vocab));
  }
  return ids;
}

// --bench: prefill (the dense forward and the appends into a session's KV) of bench_prompt
// tokens, then per depth a session prefilled with `depth` tokens (not timed) and bench_gen greedy
// decode steps. One line per measurement on stdout:
//   bench prefill tokens N depth 0 tok/s X
//   bench decode tokens N depth D tok/s X
int bench(const Options& o, const LlamaModel& model, CacheOptions cache, const ForwardTaps& taps) {
  const int32_t vocab = model.config().vocab_size;
  std::vector<TokenState> states;
  std::vector<float> logits;
  // Prefills `ids` into a new session for `max_tokens`; returns it and the seconds it took.
  auto prefilled = [&](const std::vector<int32_t>& ids, int64_t max_tokens) {
    cache.max_tokens = max_tokens;
    auto session = make_session(model, cache);
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t last = static_cast<int64_t>(ids.size()) - 1;
    model.prefill(
        ids, states, std::span(&last, 1),
        [&](int64_t, std::span<const float> row) { logits.assign(row.begin(), row.end()); }, {},
        &taps, cache.kv);
    session->append_prefill(states);
    states.clear();
    return std::make_pair(std::move(session), seconds_since(t0));
  };
  if (o.bench_prompt > 0) {
    const double s = prefilled(bench_tokens(o.bench_prompt, vocab, 1), o.bench_prompt + 1).second;
    fmt::print("bench prefill tokens {} depth 0 tok/s {:.2f}\n", o.bench_prompt,
               static_cast<double>(o.bench_prompt) / s);
    std::fflush(stdout);
  }
  for (const int64_t depth : o.bench_depths) {
    auto session = prefilled(bench_tokens(depth, vocab, 2), depth + o.bench_gen + 1).first;
    int32_t next = argmax(logits);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < o.bench_gen; ++i) next = argmax(session->decode(next));
    fmt::print("bench decode tokens {} depth {} tok/s {:.2f}\n", o.bench_gen, depth,
               static_cast<double>(o.bench_gen) / seconds_since(t0));
    std::fflush(stdout);
  }
  return 0;
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  use_target_from_env();
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto t0 = std::chrono::steady_clock::now();
  const GgufFile file = GgufFile::open(o.model);
  const Tokenizer tok(file);
  const LlamaModel model(file, threads);
  const ModelConfig& mc = model.config();
  fmt::print(stderr,
             "model {}: {} layers, d={}, {} heads ({} KV), vocab {}; loaded in {:.1f} s, {} "
             "threads, {} kernels\n",
             o.model, mc.num_layers, mc.d_model, mc.num_heads, mc.num_kv_heads, mc.vocab_size,
             seconds_since(t0), threads, active_target());
  if (!o.perplexity_file.empty()) return perplexity(o, model, tok);
  CacheOptions cache = o.cache;
  ForwardTaps taps;
  if (cache.scorer == ScorerKind::kLearned) {
    std::shared_ptr<const IndexerFile> indexer = IndexerFile::load(o.indexer);
    cache = with_chunk_tokens(std::move(cache), indexer->chunk_tokens());
    cache.indexer = std::move(indexer);
    taps = indexer_taps(*cache.indexer);
  }
  if (o.bench) return bench(o, model, cache, taps);

  const std::string text = o.raw ? o.prompt : Tokenizer::chat_prompt({{"user", o.prompt}});
  const std::vector<int32_t> prompt = !o.ids.empty() ? o.ids : tok.encode(text, /*parse_special=*/!o.raw);
  if (prompt.empty()) throw DecodeError("the prompt has no tokens");
  if (o.show_ids) fmt::print("prompt token ids ({}): {}\n", prompt.size(), fmt::join(prompt, ","));
  cache.max_tokens = static_cast<int64_t>(prompt.size()) + o.max_new + 1;
  auto session = make_session(model, cache);

  t0 = std::chrono::steady_clock::now();
  std::vector<TokenState> states;
  std::vector<float> logits;
  const int64_t last = static_cast<int64_t>(prompt.size()) - 1;
  const bool show = prompt.size() >= 512 && show_progress();
  model.prefill(
      prompt, states, std::span(&last, 1),
      [&](int64_t, std::span<const float> row) { logits.assign(row.begin(), row.end()); },
      [&](int done, int total) {
        if (show)
          fmt::print(stderr, "\rprefill {} tokens: layer {}/{}", prompt.size(), done, total);
      },
      &taps, cache.kv);
  const double prefill_s = seconds_since(t0);
  if (show) fmt::print(stderr, "\n");
  session->append_prefill(states);
  states.clear();
  if (o.top5) print_top5(tok, logits.data(), mc.vocab_size);

  t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> out;
  int32_t next = argmax(logits);
  for (int32_t i = 0; i < o.max_new; ++i) {
    if (next == tok.eos_id() || (tok.is_special(next) && tok.token_text(next) == "<|im_end|>")) break;
    out.push_back(next);
    fmt::print("{}", tok.token_text(next));
    std::fflush(stdout);
    next = argmax(session->decode(next));
  }
  const double decode_s = seconds_since(t0);
  fmt::print("\n");
  std::fflush(stdout);  // the text before the stats on stderr
  const lsa::Stats s = session->stats();
  const lsa::CacheConfig& cc = session->cache_config();
  const double page_mib = static_cast<double>(cc.page_bytes()) / (1 << 20);
  fmt::print(stderr,
             "prefill {} tokens in {:.2f} s ({:.1f} tok/s); decode {} tokens in {:.2f} s ({:.1f} tok/s)\n",
             prompt.size(), prefill_s, static_cast<double>(prompt.size()) / prefill_s, out.size(), decode_s,
             out.empty() ? 0.0 : static_cast<double>(out.size()) / decode_s);
  fmt::print(
      stderr,
      "KV: {} of {} pages resident ({:.1f}%, {:.1f} of {:.1f} MiB; {} tokens/page in chunks of {}, "
      "kmax {}), {} refreshes, {} pages recalled, {} evictions\n",
      s.resident_pages, s.total_pages, 100.0 * s.resident_fraction,
      static_cast<double>(s.resident_pages) * page_mib,
      static_cast<double>(s.total_pages) * page_mib, cc.page_tokens(), cc.chunk_tokens,
      cc.policy.kmax_pages, s.refreshes, s.recalled_pages, s.evictions);
  return 0;
}

}  // namespace
}  // namespace lsa_decode

int main(int argc, char** argv) {
  try {
    return lsa_decode::run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "lsa-decode: {}\n", e.what());
    return 1;
  }
}
