// lsa-eval: the pieces without a model (metrics, baseline scorers, method grid, report), and a
// smoke run on the real model: pass keys hidden in Genesis, dense vs lsa at a small budget vs lsa
// at a budget that covers everything, in both settings, plus a short perplexity run.
//
// Size: 2 samples at 2K tokens in optimized builds (NDEBUG); 1 sample at 256 tokens otherwise
// (the sanitizer builds). LSA_EVAL_SMOKE=full|tiny overrides. Skipped (WARN) without the model
// file or the `bible` program (Debian package bible-kjv).
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "error.hpp"
#include "eval_methods.hpp"
#include "eval_metrics.hpp"
#include "eval_report.hpp"
#include "eval_runner.hpp"
#include "eval_tasks.hpp"
#include "gguf.hpp"
#include "model.hpp"
#include "random_scorer.hpp"
#include "recency_scorer.hpp"
#include "session.hpp"
#include "support/small_cache.hpp"
#include "tokenizer.hpp"

#ifndef LSA_MODELS_DIR
#define LSA_MODELS_DIR ""
#endif
#ifndef LSA_SCRIPTS_DIR
#define LSA_SCRIPTS_DIR ""
#endif

namespace {

namespace ld = lsa_decode;
using ld::Method;
using ld::MethodKind;
using ld::Setting;

double mean(const std::vector<float>& v) {
  double sum = 0.0;
  for (const float x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

// The resident pages at the last of `steps` decode steps of a small cache over `Scorer`.
template <class Scorer>
std::vector<int32_t> resident_after(int64_t tokens, int32_t kmax, int32_t interval, int64_t steps) {
  eval_test::SmallCache<Scorer> cache(tokens, kmax, interval, steps);
  std::vector<int32_t> listed;
  for (int64_t s = 0; s < steps; ++s) listed = cache.step();
  return listed;
}

// Smaller where the build is not optimized (sanitizers): LSA_EVAL_SMOKE=full|tiny overrides.
bool tiny() {
  if (const char* env = std::getenv("LSA_EVAL_SMOKE")) return std::string(env) == "tiny";
#ifdef NDEBUG
  return false;
#else
  return true;
#endif
}

// The real model, tokenizer and Genesis text, loaded once; null (and a WARN) when missing.
struct Fixture {
  explicit Fixture(const std::string& model_path, const std::string& text_path)
      : file(ld::GgufFile::open(model_path)),
        tokenizer(file),
        model(file, static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))),
        haystack(tokenizer, text_path) {}
  ld::GgufFile file;
  ld::Tokenizer tokenizer;
  ld::LlamaModel model;
  ld::Haystack haystack;
};

const Fixture* fixture() {
  static const std::unique_ptr<Fixture> instance = []() -> std::unique_ptr<Fixture> {
    const std::string model = std::string(LSA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(model)) {
      WARN("model file " << model << " is missing (scripts/fetch_model.sh fetches it): skipped");
      return nullptr;
    }
    if (std::system("command -v bible >/dev/null 2>&1") != 0) {
      WARN("the 'bible' program is missing (Debian package bible-kjv): skipped");
      return nullptr;
    }
    const std::filesystem::path text =
        std::filesystem::temp_directory_path() /
        ("lsa_eval_smoke_genesis_" + std::to_string(getpid()) + ".txt");
    // The tiny run needs only the first verses (tokenizing all of Genesis is slow under
    // sanitizers).
    const std::string cmd = "bash '" + std::string(LSA_SCRIPTS_DIR) + "/genesis.sh'" +
                            (tiny() ? " | head -n 120" : "") + " > '" + text.string() + "'";
    if (std::system(cmd.c_str()) != 0) {
      WARN("scripts/genesis.sh failed: skipped");
      return nullptr;
    }
    auto f = std::make_unique<Fixture>(model, text.string());
    std::filesystem::remove(text);
    return f;
  }();
  return instance.get();
}

}  // namespace

TEST_CASE("eval: metrics", "[decoder][eval]") {
  CHECK(ld::first_digits(" 48213. Remember") == "48213");
  CHECK(ld::first_digits("The number is 12, not 3") == "12");
  CHECK(ld::first_digits("no digits").empty());
  CHECK(ld::argmax(std::vector<float>{1, 3, 3, 2}) == 1);

  std::vector<float> p, q;
  ld::log_softmax(std::vector<float>{1.0f, 2.0f, 3.0f}, p);
  double sum = 0;
  for (float x : p) sum += std::exp(x);
  CHECK(sum == Approx(1.0).epsilon(1e-6));
  CHECK(ld::kl_divergence(p, p) == 0.0);
  ld::log_softmax(std::vector<float>{3.0f, 2.0f, 1.0f}, q);
  // KL of softmax(1,2,3) against its reverse: sum p (lp - lq) = (p3 - p1) * 2.
  const double p1 = std::exp(p[0]), p3 = std::exp(p[2]);
  CHECK(ld::kl_divergence(p, q) == Approx(2.0 * (p3 - p1)).epsilon(1e-5));
}

TEST_CASE("eval: method grid, names and session options", "[decoder][eval]") {
  const std::vector<ld::MethodSpec> specs = {
      ld::parse_method("dense"),     ld::parse_method("oracle-i64"), ld::parse_method("lsa-i1"),
      ld::parse_method("lsa-i8"),    ld::parse_method("lsa-i64"),    ld::parse_method("quest"),
      ld::parse_method("recency"),   ld::parse_method("random")};
  const std::vector<double> budgets = {0.15, 0.10};
  const std::vector<Method> grid = ld::method_grid(specs, budgets);
  REQUIRE(grid.size() == 15);
  CHECK(grid[0].label() == "dense");
  CHECK(grid[1].label() == "oracle-i64@10%");
  CHECK(grid[2].label() == "lsa-i1@10%");
  CHECK(grid[4].label() == "lsa-i64@10%");
  CHECK(grid[7].label() == "random@10%");
  CHECK(grid[7].interval == 64);
  CHECK(grid[8].label() == "oracle-i64@15%");
  CHECK(ld::parse_method("quest") == ld::MethodSpec{MethodKind::kQuest, 1});
  CHECK(ld::parse_method("random-i8") == ld::MethodSpec{MethodKind::kRandom, 8});
  CHECK(Method{MethodKind::kRandom, 0.1, 8}.name() == "random-i8");
  for (const char* bad : {"bogus", "lsa", "oracle", "quest-i4", "lsa-i0", "lsa-i", "lsa-i8x",
                          "dense-i1", "lsa-i99999999999"}) {
    CHECK_THROWS_AS(ld::parse_method(bad), ld::DecodeError);
  }
  CHECK_THROWS_AS(ld::method_grid(specs, std::vector<double>{1.5}), ld::DecodeError);
  CHECK_THROWS_AS(ld::cache_options({MethodKind::kOracle, 0.1, 64}, 2048), ld::DecodeError);

  const ld::CacheOptions quest = ld::cache_options({MethodKind::kQuest, 0.1, 64}, 2048);
  CHECK(quest.current_query);
  CHECK(quest.interval == 1);
  CHECK(quest.scorer == ld::ScorerKind::kBound);
  CHECK(ld::cache_options({MethodKind::kRecency, 0.1, 64}, 2048).scorer ==
        ld::ScorerKind::kRecency);
  CHECK(ld::cache_options({MethodKind::kRandom, 0.1, 64}, 2048).scorer == ld::ScorerKind::kRandom);
  CHECK(ld::cache_options({MethodKind::kDense, 1.0, 1}, 2048).dense);
  CHECK(ld::cache_options({MethodKind::kDense, 1.0, 1}, 2048).kv == ld::KvType::kF32);
  ld::CacheShape f16_shape;
  f16_shape.kv = ld::KvType::kF16;
  CHECK(ld::cache_options({MethodKind::kLsa, 0.1, 64}, 2048, f16_shape).kv == ld::KvType::kF16);

  ld::CacheOptions bad = quest;
  bad.interval = 8;
  ld::ModelConfig m;
  m.num_layers = 2;
  m.num_heads = 2;
  m.num_kv_heads = 1;
  m.head_dim = 4;
  CHECK_THROWS_AS(ld::make_cache_config(m, bad), ld::DecodeError);
}

TEST_CASE("eval: baseline scorers select recent pages and seeded random pages", "[decoder][eval]") {
  STATIC_REQUIRE(lsa::IndexScorer<ld::RandomScorer>);
  STATIC_REQUIRE(lsa::IndexScorer<ld::RecencyScorer>);
  // 64 tokens = 16 pages of 4; kmax 5: the recency set is the sink and the 4 last pages.
  CHECK(resident_after<ld::RecencyScorer>(64, 5, 1, 1) == std::vector<int32_t>{0, 12, 13, 14, 15});
  // ... and it slides with the history (refresh every step): 8 more tokens = 2 more pages.
  CHECK(resident_after<ld::RecencyScorer>(64, 5, 1, 9) == std::vector<int32_t>{0, 14, 15, 16, 17});
  // Random: the same keys give the same pages; the set fills the budget and is not the recency one.
  const std::vector<int32_t> a = resident_after<ld::RandomScorer>(256, 8, 64, 1);
  CHECK(a == resident_after<ld::RandomScorer>(256, 8, 64, 1));
  CHECK(a.size() == 8);
  CHECK(a != resident_after<ld::RecencyScorer>(256, 8, 64, 1));
}

TEST_CASE("eval: smoke run on the real model (pass keys in Genesis)", "[decoder][eval]") {
  const Fixture* f = fixture();
  if (f == nullptr) return;
  const bool small = tiny();
  const int64_t length = small ? 256 : 2048;
  const int32_t samples = small ? 1 : 2;
  const double budget = small ? 0.5 : 0.15;  // 256 tokens: less would be fewer pages than forced
  const std::vector<Method> methods = {{MethodKind::kDense, 1.0, 1},
                                       {MethodKind::kLsa, budget, 8},
                                       {MethodKind::kLsa, 1.0, 8},
                                       {MethodKind::kOracle, budget, 8}};
  const std::vector<Setting> settings = {Setting::kPrompt, Setting::kQuestion};
  ld::EvalContext ctx{f->model, f->tokenizer};
  ctx.max_new = small ? 6 : 8;  // " 12345" is 6 tokens

  ld::EvalRun run;
  run.command = "eval_smoke_test";
  run.methods = methods;
  run.settings = settings;
  run.tasks = {ld::TaskKind::kPasskey};
  run.lengths = {length};
  for (int32_t i = 0; i < samples; ++i) {
    ld::SampleSpec spec;
    spec.context_tokens = length;
    spec.depth = 0.25 + 0.5 * i;
    spec.index = i;
    spec.seed = 7;
    spec.max_new = ctx.max_new;
    ld::SampleRecord r;
    r.sample = ld::make_sample(f->tokenizer, f->haystack, spec);
    const int64_t prompt = static_cast<int64_t>(r.sample.context.size() + r.sample.question.size());
    REQUIRE(prompt == length - ctx.max_new);
    REQUIRE(r.sample.answer.size() == 5);
    r.outcome = ld::run_sample(ctx, r.sample, methods, settings);
    REQUIRE(r.outcome.answers.size() == methods.size() * settings.size());

    for (size_t s = 0; s < settings.size(); ++s) {
      const ld::AnswerOutcome& dense = r.outcome.answers[s * methods.size()];
      const ld::AnswerOutcome& sparse = r.outcome.answers[s * methods.size() + 1];
      const ld::AnswerOutcome& full = r.outcome.answers[s * methods.size() + 2];
      const ld::AnswerOutcome& oracle = r.outcome.answers[s * methods.size() + 3];
      INFO("sample " << i << " setting " << ld::setting_name(settings[s]) << ": expected "
                     << r.sample.answer << ", dense said '" << dense.text << "', lsa said '"
                     << sparse.text << "'");
      CHECK(dense.correct);
      CHECK(dense.resident_fraction == 1.0);
      CHECK(dense.kl_sum == 0.0);
      // A budget that covers every page is dense, bit for bit.
      CHECK(full.tokens == dense.tokens);
      CHECK(full.same_as_dense);
      CHECK(full.answer_logprob == dense.answer_logprob);
      CHECK(full.kl_sum == 0.0);
      CHECK(full.top1_agree == full.compared_steps);
      CHECK(full.resident_fraction == 1.0);
      // The sparse session holds exactly its kmax pages of the final history.
      const int64_t final_tokens = prompt + static_cast<int64_t>(sparse.tokens.size()) - 1;
      const lsa::CacheConfig cc =
          ld::make_cache_config(f->model.config(), ld::cache_options(methods[1], length));
      const double pages =
          std::ceil(static_cast<double>(final_tokens) / static_cast<double>(cc.page_tokens()));
      CHECK(sparse.resident_fraction == Approx(cc.policy.kmax_pages / pages));
      CHECK(sparse.resident_fraction == Approx(budget).margin(2.0 / pages));
      CHECK(sparse.compared_steps == static_cast<int64_t>(dense.tokens.size()) - (s == 0 ? 1 : 0));
      CHECK(std::isfinite(sparse.answer_logprob));
      CHECK(sparse.kl_sum >= 0.0);
      // Coverage: one value per layer of every decode call fed the dense tokens; exactly one for
      // dense and for the covering budget, a share for the sparse methods.
      const auto layers = static_cast<size_t>(f->model.config().num_layers);
      const size_t calls = dense.tokens.size() - 1 + (s == 0 ? 0 : r.sample.question.size());
      for (const ld::AnswerOutcome* o : {&dense, &full, &sparse, &oracle}) {
        CHECK(o->coverage.size() == calls * layers);
      }
      CHECK(std::all_of(dense.coverage.begin(), dense.coverage.end(), [](float c) { return c == 1.0f; }));
      CHECK(std::all_of(full.coverage.begin(), full.coverage.end(), [](float c) { return c == 1.0f; }));
      for (const ld::AnswerOutcome* o : {&sparse, &oracle}) {
        CHECK(std::all_of(o->coverage.begin(), o->coverage.end(),
                          [](float c) { return c > 0.0f && c <= 1.0f; }));
      }
      // The oracle knows the dense run's next steps: it covers more than the bound scorer.
      CHECK(mean(oracle.coverage) > mean(sparse.coverage));
      CHECK(oracle.resident_fraction == sparse.resident_fraction);
    }
    run.samples.push_back(std::move(r));
  }

  // Perplexity: the covering budget again equals dense exactly.
  // (kmax of prefix + continuation must cover the 3 pages sink, recent and tail force.)
  const int64_t prefix = small ? 192 : 512, continuation = small ? 8 : 24;
  const std::vector<int32_t> text = f->haystack.tokens(0, prefix + continuation + 1);
  run.perplexity = ld::run_perplexity(ctx, text, prefix, continuation, methods);
  run.perplexity_tokens = continuation;
  const auto& ppl = run.perplexity->methods;
  REQUIRE(ppl.size() == 4);
  CHECK(ppl[0].coverage.size() == static_cast<size_t>(continuation * f->model.config().num_layers));
  CHECK(mean(ppl[2].coverage) == 1.0);
  CHECK(mean(ppl[3].coverage) > mean(ppl[1].coverage));
  CHECK(ppl[2].nll_sum == ppl[0].nll_sum);
  CHECK(ppl[2].kl_sum == 0.0);
  CHECK(ppl[1].kl_sum >= 0.0);
  CHECK(std::exp(ppl[0].nll_sum / static_cast<double>(ppl[0].tokens)) < 100.0);

  // The report: tables for both settings and the perplexity; files written.
  const std::string md = ld::render_markdown(run, "smoke");
  CHECK_THAT(md, Catch::Matchers::Contains("| dense | 100% |"));
  CHECK_THAT(md, Catch::Matchers::Contains("setting (b)"));
  CHECK_THAT(md, Catch::Matchers::Contains("## Perplexity"));
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("lsa_eval_smoke_report_" + std::to_string(getpid()));
  const ld::ReportFiles files = ld::write_report(run, dir.string(), "smoke");
  CHECK(std::filesystem::exists(files.markdown));
  CHECK(std::filesystem::exists(files.samples));
  CHECK(std::filesystem::exists(files.script));
  if (files.plot.empty()) WARN(files.plot_note);
  std::filesystem::remove_all(dir);
}
