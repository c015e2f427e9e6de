// lsa-eval's results: a Markdown report (accuracy, fidelity to dense, perplexity tables), the
// per-sample rows, and an accuracy-vs-budget plot (gnuplot .dat + .gp, rendered when gnuplot is
// installed).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eval_methods.hpp"
#include "eval_runner.hpp"
#include "eval_tasks.hpp"

namespace lsa_decode {

/// One evaluated sample.
struct SampleRecord {
  TaskSample sample;      ///< what was asked (its token vectors may be cleared to save memory)
  SampleOutcome outcome;  ///< what each method answered
};

/// Everything one lsa-eval run produced.
struct EvalRun {
  std::string command;  ///< the command line, for reproduction
  std::vector<std::pair<std::string, std::string>>
      facts;  ///< "model", path, ...: the report's header
  std::vector<Method> methods;
  std::vector<Setting> settings;
  std::vector<TaskKind> tasks;
  std::vector<int64_t> lengths;
  std::vector<SampleRecord> samples;
  std::optional<PerplexityRun> perplexity;
  int64_t perplexity_tokens = 0;  ///< continuation length scored
  double seconds = 0.0;           ///< wall time of the whole run
};

/// The files write_report wrote.
struct ReportFiles {
  std::string markdown;   ///< <dir>/<name>.md
  std::string samples;    ///< <dir>/<name>-samples.tsv: one row per sample, setting and method
  std::string data;       ///< <dir>/<name>-accuracy.dat
  std::string script;     ///< <dir>/<name>-accuracy.gp
  std::string plot;       ///< <dir>/<name>-accuracy.png, empty when it was not rendered
  std::string plot_note;  ///< why the plot was not rendered, or ""
};

/// "2K" for 2048, "4K", "8K"; other lengths as numbers.
std::string length_label(int64_t tokens);

/// The Markdown report: header facts, accuracy per setting (task x length), fidelity to dense
/// (answer log-probability, KL, top-1, resident fraction, decode tokens/s), perplexity.
std::string render_markdown(const EvalRun& run, const std::string& name);

/// Writes the report files under `dir` (created when missing) and runs gnuplot on the script when
/// it is installed. Throws DecodeError when a file cannot be written.
ReportFiles write_report(const EvalRun& run, const std::string& dir, const std::string& name);

}  // namespace lsa_decode
