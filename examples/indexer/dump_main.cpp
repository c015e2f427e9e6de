// lsa-indexer-dump: runs the model densely, once, over the memory indexer's training documents
// and writes what the trainer needs (features of both sides and lookahead labels) as NumPy arrays
// (dump_writer.hpp has the layout). Training then never loads the model ("backbone-free").
//
//   bash scripts/training_text.sh > results/training.txt
//   lsa-indexer-dump --text results/training.txt --out results/indexer-dump [...] (--help)
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_args.hpp"
#include "document_dump.hpp"
#include "draws.hpp"
#include "error.hpp"
#include "gguf.hpp"
#include "haystack.hpp"
#include "model.hpp"
#include "synthetic_tasks.hpp"
#include "tokenizer.hpp"

namespace lsa_decode {

void usage_error(const std::string& what) {
  throw DecodeError(what + " (lsa-indexer-dump --help lists the options)");
}

}  // namespace lsa_decode

namespace lsa_indexer {
namespace {

using lsa_decode::ArgReader;
using lsa_decode::parse_int;
using lsa_decode::usage_error;

struct Options {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string text;
  std::string out;
  int64_t text_docs = 100;
  int64_t text_doc_tokens = 2048;
  int64_t synthetic_docs = 100;
  int64_t synthetic_min_tokens = 1024;
  int64_t synthetic_max_tokens = 4096;
  int32_t max_notes = 4;
  NoteStyle notes = NoteStyle::kClassic;
  uint64_t seed = 1;
  int threads = 0;
  DumpConfig dump;
};

void print_help() {
  fmt::print(
      "lsa-indexer-dump: the memory indexer's training dump (features + lookahead labels)\n\n"
      "  --text PATH              training text, one passage per line (bash "
      "scripts/training_text.sh)\n"
      "  --out DIR                output directory (NumPy arrays + meta.json)\n"
      "  -m, --model PATH         GGUF model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
      "  --text-docs N            documents cut from the text, spread evenly over it (default "
      "100)\n"
      "  --text-doc-tokens N      tokens per text document (default 2048)\n"
      "  --synthetic-docs N       synthetic retrieval documents (default 100)\n"
      "  --synthetic-tokens A,B   their length, uniform in [A, B] (default 1024,4096)\n"
      "  --max-notes N            notes per synthetic document, 1..N (default 4)\n"
      "  --notes classic|varied   note templates: the shipped indexer's 5, or 14 with\n"
      "                           same-template documents and 3 instructions (default classic)\n"
      "  --taps LIST              layers whose entering residual stream is a feature (default "
      "15,30)\n"
      "  --chunk-tokens N         tokens per chunk (default 16)\n"
      "  --lookahead N            positions a refresh's labels cover (default 64)\n"
      "  --top-p P                attention share a layer's kept chunks hold (default 0.6)\n"
      "  --min-layers N           layers that must keep a chunk for it to be golden (default 3)\n"
      "  --refresh-stride N       regular refreshes every N tokens (default 64) ...\n"
      "  --min-history N          ... from N tokens of history on (default 128)\n"
      "  --seed N                 document seed (default 1)\n"
      "  --threads N              worker threads (default: hardware threads)\n");
}

std::vector<int64_t> int_list(const std::string& flag, const std::string& value, int64_t lo,
                              int64_t hi) {
  std::vector<int64_t> out;
  std::stringstream list(value);
  for (std::string item; std::getline(list, item, ',');) out.push_back(parse_int(flag, item, lo, hi));
  if (out.empty()) usage_error(fmt::format("{} needs a comma-separated list", flag));
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  o.dump.taps = {15, 30};
  for (ArgReader args(argc, argv); args.next();) {
    const std::string& a = args.option();
    if (a == "-h" || a == "--help") {
      print_help();
      std::exit(0);
    } else if (a == "-m" || a == "--model") {
      o.model = args.value();
    } else if (a == "--text") {
      o.text = args.value();
    } else if (a == "--out") {
      o.out = args.value();
    } else if (a == "--text-docs") {
      o.text_docs = parse_int(a, args.value(), 0, 1 << 20);
    } else if (a == "--text-doc-tokens") {
      o.text_doc_tokens = parse_int(a, args.value(), 64, 1 << 20);
    } else if (a == "--synthetic-docs") {
      o.synthetic_docs = parse_int(a, args.value(), 0, 1 << 20);
    } else if (a == "--synthetic-tokens") {
      const std::vector<int64_t> v = int_list(a, args.value(), 256, 1 << 20);
      if (v.size() != 2 || v[0] > v[1]) usage_error(fmt::format("{} takes A,B with A <= B", a));
      o.synthetic_min_tokens = v[0];
      o.synthetic_max_tokens = v[1];
    } else if (a == "--max-notes") {
      o.max_notes = static_cast<int32_t>(parse_int(a, args.value(), 1, 64));
    } else if (a == "--notes") {
      const std::string v = args.value();
      if (v != "classic" && v != "varied") {
        usage_error(fmt::format("--notes takes classic or varied (got '{}')", v));
      }
      o.notes = v == "classic" ? NoteStyle::kClassic : NoteStyle::kVaried;
    } else if (a == "--taps") {
      o.dump.taps.clear();
      for (const int64_t l : int_list(a, args.value(), 0, 1 << 16)) {
        o.dump.taps.push_back(static_cast<int32_t>(l));
      }
    } else if (a == "--chunk-tokens") {
      o.dump.labels.chunk_tokens = static_cast<int32_t>(parse_int(a, args.value(), 1, 4096));
    } else if (a == "--lookahead") {
      o.dump.labels.lookahead = static_cast<int32_t>(parse_int(a, args.value(), 1, 1 << 20));
    } else if (a == "--top-p") {
      const std::string v = args.value();
      char* end = nullptr;
      o.dump.labels.top_p = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(o.dump.labels.top_p > 0.0 && o.dump.labels.top_p <= 1.0)) {
        usage_error(fmt::format("--top-p takes a fraction in (0, 1] (got '{}')", v));
      }
    } else if (a == "--min-layers") {
      o.dump.labels.min_layers = static_cast<int32_t>(parse_int(a, args.value(), 1, 255));
    } else if (a == "--refresh-stride") {
      o.dump.refresh_stride = static_cast<int32_t>(parse_int(a, args.value(), 1, 1 << 20));
    } else if (a == "--min-history") {
      o.dump.min_history = static_cast<int32_t>(parse_int(a, args.value(), 1, 1 << 20));
    } else if (a == "--seed") {
      o.seed = static_cast<uint64_t>(parse_int(a, args.value(), 0, INT64_MAX));
    } else if (a == "--threads") {
      o.threads = static_cast<int>(parse_int(a, args.value(), 1, 256));
    } else {
      usage_error(fmt::format("unknown option '{}'", a));
    }
  }
  if (o.text.empty() || o.out.empty()) usage_error("--text PATH and --out DIR are required");
  return o;
}

std::string command_line(int argc, char** argv) {
  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i > 0 ? " " : "") + std::string(argv[i]);
  return cmd;
}

// JSON string body: quotes, backslashes and control characters escaped.
std::string json_escape(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<int>(ch));
    } else {
      out += ch;
    }
  }
  return out;
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const auto start = std::chrono::steady_clock::now();
  const int threads = o.threads > 0
                          ? o.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const lsa_decode::GgufFile file = lsa_decode::GgufFile::open(o.model);
  const lsa_decode::Tokenizer tok(file);
  const lsa_decode::LlamaModel model(file, threads);
  const lsa_decode::ModelConfig& mc = model.config();
  for (const int32_t l : o.dump.taps) {
    if (l > mc.num_layers) usage_error(fmt::format("--taps: layer {} > the model's {}", l, mc.num_layers));
  }
  const lsa_decode::Haystack text(tok, o.text);
  DumpWriter writer(o.out, static_cast<int32_t>(o.dump.taps.size()), mc.d_model);
  fmt::print(stderr, "lsa-indexer-dump: text '{}' ({} lines, {} tokens); {} text docs of {} tokens, "
             "{} synthetic docs of {}..{} tokens; taps {}\n",
             o.text, text.num_pieces(), text.num_tokens(), o.text_docs, o.text_doc_tokens,
             o.synthetic_docs, o.synthetic_min_tokens, o.synthetic_max_tokens, o.dump.taps);

  int64_t tokens_done = 0;
  auto log_doc = [&](const char* what, int64_t i, int64_t n, const DocumentStats& s) {
    tokens_done += n;
    const double elapsed = lsa_decode::seconds_since(start);
    fmt::print(stderr, "[{} {}] {} tokens, {} refreshes, {:.1f} positives of {:.0f} candidates "
               "per refresh ({:.0f} s, {:.0f} tok/s)\n",
               what, i, n, s.refreshes,
               s.refreshes ? static_cast<double>(s.positives) / s.refreshes : 0.0,
               s.refreshes ? static_cast<double>(s.candidates) / s.refreshes : 0.0, elapsed,
               static_cast<double>(tokens_done) / elapsed);
  };
  // Text documents start at verses spread evenly over the text, so every book is represented;
  // documents alternate with synthetic ones so that a cut-short run keeps both kinds.
  lsa_decode::Draws lengths(lsa_decode::mix64(o.seed ^ 0x5EED));
  const int64_t docs = std::max(o.text_docs, o.synthetic_docs);
  for (int64_t i = 0; i < docs; ++i) {
    if (i < o.text_docs) {
      const int64_t first = text.num_pieces() * i / std::max<int64_t>(1, o.text_docs);
      const std::vector<int32_t> ids = text.tokens(first, o.text_doc_tokens);
      log_doc("text", i, static_cast<int64_t>(ids.size()),
              dump_document(model, ids, DocKind::kText, {}, o.dump, writer));
    }
    if (i < o.synthetic_docs) {
      const int64_t n = o.synthetic_min_tokens +
                        static_cast<int64_t>(lengths.below(static_cast<uint64_t>(
                            o.synthetic_max_tokens - o.synthetic_min_tokens + 1)));
      const SyntheticDoc doc = make_synthetic_doc(
          tok, text, n, o.max_notes, lsa_decode::mix64(o.seed) ^ static_cast<uint64_t>(i), o.notes);
      // Every position of the question and the answer is a refresh: where the eval's settings
      // refresh (question start, answer start) and what a shorter interval sees in between.
      std::vector<SpecialRefresh> special;
      for (int64_t t = doc.question_start; t < static_cast<int64_t>(doc.tokens.size()); ++t) {
        special.push_back({t, t < doc.answer_start ? RefreshKind::kQuestion : RefreshKind::kAnswer});
      }
      log_doc("synthetic", i, static_cast<int64_t>(doc.tokens.size()),
              dump_document(model, doc.tokens, DocKind::kSynthetic, special, o.dump, writer));
      fmt::print(stderr, "  {} notes; asked: {} -> {}\n", doc.note_positions.size(), doc.question,
                 doc.answer);
    }
  }
  const LabelConfig& l = o.dump.labels;
  std::string meta = fmt::format(
      "{{\n  \"format\": \"lsa-indexer-dump/1\",\n  \"command\": \"{}\",\n  \"model\": \"{}\",\n"
      "  \"model_layers\": {},\n  \"model_heads\": {},\n  \"d_model\": {},\n  \"taps\": [{}],\n"
      "  \"chunk_tokens\": {},\n  \"lookahead\": {},\n  \"top_p\": {},\n  \"min_layers\": {},\n"
      "  \"refresh_stride\": {},\n  \"min_history\": {},\n  \"seed\": {},\n  \"text\": \"{}\",\n"
      "  \"text_docs\": {},\n  \"text_doc_tokens\": {},\n  \"synthetic_docs\": {},\n"
      "  \"synthetic_tokens\": [{}, {}],\n  \"max_notes\": {},\n{}  \"docs\": {},\n"
      "  \"chunks\": {},\n"
      "  \"refreshes\": {},\n  \"tokens\": {}\n}}\n",
      json_escape(command_line(argc, argv)), json_escape(o.model), mc.num_layers, mc.num_heads,
      mc.d_model, fmt::join(o.dump.taps, ", "), l.chunk_tokens, l.lookahead, l.top_p,
      l.min_layers, o.dump.refresh_stride, o.dump.min_history, o.seed, json_escape(o.text),
      o.text_docs, o.text_doc_tokens, o.synthetic_docs, o.synthetic_min_tokens,
      o.synthetic_max_tokens, o.max_notes,
      // Named only when varied: classic dumps keep the meta (and so the indexer description)
      // they had before the option existed, and the shipped file reproduces bit for bit.
      o.notes == NoteStyle::kVaried ? "  \"notes\": \"varied\",\n" : "", writer.num_docs(),
      writer.num_chunks(),
      writer.num_refreshes(), tokens_done);
  writer.finish(meta);
  fmt::print(stderr, "wrote {} documents, {} chunks, {} refreshes to {} in {:.0f} s\n",
             writer.num_docs(), writer.num_chunks(), writer.num_refreshes(), o.out,
             lsa_decode::seconds_since(start));
  return 0;
}

}  // namespace
}  // namespace lsa_indexer

int main(int argc, char** argv) {
  try {
    return lsa_indexer::run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "lsa-indexer-dump: {}\n", e.what());
    return 1;
  }
}
