// lsa-eval's summary and report writer on a fixed, hand-made result set.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "eval_report.hpp"
#include "eval_summary.hpp"

namespace {

namespace ld = lsa_decode;
using ld::Method;
using ld::MethodKind;
using ld::Setting;

ld::AnswerOutcome outcome(const Method& m, bool correct, bool agrees, double kl, int64_t top1,
                          std::vector<float> coverage) {
  ld::AnswerOutcome o;
  o.method = m;
  o.setting = Setting::kPrompt;
  o.text = correct ? " 1234567." : " 11.";
  o.correct = correct;
  o.agrees_with_dense = agrees;
  o.kl_sum = kl * 4;
  o.top1_agree = top1;
  o.compared_steps = 4;
  o.answer_logprob = -2.0;
  o.resident_fraction = m.kind == MethodKind::kDense ? 1.0 : 0.1;
  o.decode_tokens = 10;
  o.decode_seconds = 0.5;
  o.coverage = std::move(coverage);
  return o;
}

// Two samples (single 4K, multikey 4K); dense right on both, oracle-i64@10% right on one.
ld::EvalRun fixed_run() {
  const Method dense{MethodKind::kDense, 1.0, 1}, oracle{MethodKind::kOracle, 0.1, 64};
  ld::EvalRun run;
  run.command = "lsa-eval --fixed";
  run.methods = {dense, oracle};
  run.settings = {Setting::kPrompt};
  run.tasks = {ld::TaskKind::kSingleNeedle, ld::TaskKind::kMultiKey};
  run.lengths = {4096};
  run.seconds = 12.0;
  for (const ld::TaskKind task : run.tasks) {
    ld::SampleRecord r;
    r.sample.spec.task = task;
    r.sample.spec.context_tokens = 4096;
    r.sample.answer = "1234567";
    const bool right = task == ld::TaskKind::kSingleNeedle;
    r.outcome.answers.push_back(outcome(dense, true, true, 0.0, 4, {1.0f, 1.0f}));
    r.outcome.answers.push_back(outcome(oracle, right, right, right ? 0.1 : 0.3, right ? 4 : 2,
                                        right ? std::vector<float>{0.9f, 0.8f}
                                              : std::vector<float>{0.5f, 0.6f}));
    run.samples.push_back(std::move(r));
  }
  return run;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("eval: the summary pools samples with intervals", "[decoder][eval]") {
  const ld::EvalRun run = fixed_run();
  const ld::EvalSummary t = ld::summarize(run.samples);
  const ld::MethodSummary& o = t.methods.at({"oracle-i64@10%", static_cast<int>(Setting::kPrompt)});
  CHECK(o.samples == 2);
  CHECK(o.correct == 1);
  CHECK(o.exact.value == 0.5);
  CHECK(o.exact.low == Approx(0.094531).epsilon(1e-4));
  CHECK(o.kl.value == Approx(0.2));
  CHECK(o.top1.value == Approx(0.75));
  CHECK(o.coverage == Approx(0.7));
  CHECK(o.coverage_p5 == Approx(0.515));  // 5th percentile of {0.5, 0.6, 0.8, 0.9}
  CHECK(o.tokens_per_second() == Approx(20.0));
  CHECK(t.methods.at({"dense", -1}).samples == 2);  // both settings pooled (one here)
  CHECK(t.cells.at({"oracle-i64@10%", 0, static_cast<int>(ld::TaskKind::kMultiKey), 4096}) ==
        std::pair<int64_t, int64_t>{0, 1});
}

TEST_CASE("eval: the report writer on a fixed result set", "[decoder][eval]") {
  const ld::EvalRun run = fixed_run();
  const std::string md = ld::render_markdown(run, "fixed");
  CHECK_THAT(md, Catch::Contains("Reproduce: `lsa-eval --fixed`"));
  CHECK_THAT(md, Catch::Contains("| dense | 100% | 2 | 100.0% [34.2, 100.0] | 100.0% [34.2, 100.0] |"));
  CHECK_THAT(md, Catch::Contains(
                     "| oracle-i64 | 10% | 2 | 50.0% [9.5, 90.5] | 50.0% [9.5, 90.5] | 0.200 ["));
  CHECK_THAT(md, Catch::Contains("| 70.0% | 51.5% | 10.0% |"));  // coverage, p5, resident
  CHECK_THAT(md, Catch::Contains("| oracle-i64 | 10% | 1/1 | 0/1 |"));
  CHECK_THAT(md, Catch::Contains("| oracle-i64 | 10% | 20 | 20.0 |"));

  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("lsa_eval_report_test_" + std::to_string(getpid()));
  const ld::ReportFiles files = ld::write_report(run, dir.string(), "fixed");
  CHECK(read(files.markdown) == md);
  const std::string tsv = read(files.samples);
  CHECK(std::count(tsv.begin(), tsv.end(), '\n') == 5);  // header + 2 samples x 2 methods
  CHECK_THAT(tsv, Catch::Contains("\tcoverage_mean\tcoverage_p5\t"));
  // Plot data: a block per method, one row per budget (dense repeated at the budget).
  const std::string dat = read(files.data);
  CHECK_THAT(dat, Catch::Contains("# dense (prompt)\n10 100.000 34.238 100.000 100.000\n"));
  CHECK_THAT(dat, Catch::Contains("# oracle-i64 (prompt)\n10 50.000 9.453 90.547 70.000\n"));
  const std::string gp = read(files.script);
  CHECK_THAT(gp, Catch::Contains("index 1 using ($1+0.06):2:3:4 with yerrorlines"));
  if (files.plot.empty()) {
    WARN(files.plot_note);
  } else {
    CHECK(std::filesystem::file_size(files.plot) > 1000);
  }
  std::filesystem::remove_all(dir);
}
