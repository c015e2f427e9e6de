#include "eval_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>

#include "error.hpp"
#include "eval_stats.hpp"
#include "eval_summary.hpp"

namespace lsa_decode {
namespace {

std::string percent(double v, int decimals = 1) {
  return std::isnan(v) ? "-" : fmt::format("{:.{}f}%", 100.0 * v, decimals);
}

// "46.7% [34.6, 59.1]": a share with its interval, in percent.
std::string percent_interval(const Interval& i) {
  if (std::isnan(i.value)) return "-";
  return fmt::format("{:.1f}% [{:.1f}, {:.1f}]", 100.0 * i.value, 100.0 * i.low, 100.0 * i.high);
}

// "0.123 [0.100, 0.146]".
std::string value_interval(const Interval& i) {
  if (std::isnan(i.value)) return "-";
  return fmt::format("{:.3f} [{:.3f}, {:.3f}]", i.value, i.low, i.high);
}

std::string budget_cell(const Method& m) {
  return m.kind == MethodKind::kDense ? "100%"
                                      : fmt::format("{:g}%", std::round(m.budget * 1000.0) / 10.0);
}

std::string setting_title(Setting s) {
  return s == Setting::kPrompt ? "setting (a) `prompt`: the whole prompt, question included, "
                                 "prefilled dense; the answer decoded under the method (the "
                                 "paper's setting)"
                               : "setting (b) `question`: the haystack prefilled dense; the "
                                 "question and the answer decoded token by token under the method";
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw DecodeError(fmt::format("cannot write '{}'", path));
}

std::string tsv_field(std::string s) {
  for (char& ch : s) {
    if (ch == '\t' || ch == '\n' || ch == '\r') ch = ' ';
  }
  return s;
}

double mean_of(const std::vector<float>& v) {
  double sum = 0.0;
  for (const float x : v) sum += x;
  return v.empty() ? NAN : sum / static_cast<double>(v.size());
}

const MethodSummary* find(const EvalSummary& t, const Method& m, int setting) {
  const auto it = t.methods.find({m.label(), setting});
  return it == t.methods.end() ? nullptr : &it->second;
}

// Per setting: exact match, agreement with dense, KL, top-1 and coverage with their intervals.
std::string summary_tables(const EvalRun& run, const EvalSummary& t) {
  std::string md = "## Fidelity to dense and accuracy, pooled over tasks and lengths\n\n";
  md +=
      "Each row pools every sample of the setting (n per row). `exact match`: the answer's first "
      "run of digits is the expected number; `agrees`: it equals the dense answer's; both with "
      "95% Wilson intervals. `KL` (nats) and `top-1` (the step's argmax is the dense token) are "
      "per answer step decoded under the method, teacher-forced on the dense answer, averaged per "
      "sample, then over samples, with a 95% normal interval over samples. `coverage`: share of "
      "the dense run's attention mass (per layer, all heads) on the method's pages and the token "
      "itself, over every decode step fed the dense tokens and every layer: mean and 5th "
      "percentile.\n\n";
  for (const Setting s : run.settings) {
    md += fmt::format("### {}\n\n", setting_title(s));
    md +=
        "| method | budget | n | exact match | agrees with dense | KL | top-1 | coverage | "
        "coverage p5 | resident |\n";
    md += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const Method& m : run.methods) {
      const MethodSummary* r = find(t, m, static_cast<int>(s));
      if (r == nullptr) continue;
      md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", m.name(),
                        budget_cell(m), r->samples, percent_interval(r->exact),
                        percent_interval(r->agreement), value_interval(r->kl),
                        percent_interval(r->top1), percent(r->coverage),
                        percent(r->coverage_p5), percent(r->resident));
    }
    md += "\n";
  }
  return md;
}

// Per setting: correct / samples per (task, length).
std::string cell_tables(const EvalRun& run, const EvalSummary& t) {
  std::string md = "## Exact match per task and length\n\nCells are correct/samples.\n\n";
  for (const Setting s : run.settings) {
    md += fmt::format("### {}\n\n", setting_title(s));
    md += "| method | budget |";
    std::string rule = "|---|---:|";
    for (const TaskKind task : run.tasks) {
      for (const int64_t len : run.lengths) {
        md += fmt::format(" {} {} |", task_name(task), length_label(len));
        rule += "---:|";
      }
    }
    md += "\n" + rule + "\n";
    for (const Method& m : run.methods) {
      md += fmt::format("| {} | {} |", m.name(), budget_cell(m));
      for (const TaskKind task : run.tasks) {
        for (const int64_t len : run.lengths) {
          const auto it = t.cells.find({m.label(), static_cast<int>(s), static_cast<int>(task), len});
          md += it == t.cells.end()
                    ? " - |"
                    : fmt::format(" {}/{} |", it->second.first, it->second.second);
        }
      }
      md += "\n";
    }
    md += "\n";
  }
  return md;
}

std::string speed_table(const EvalRun& run, const EvalSummary& t) {
  std::string md =
      "## Decode speed\n\nDecode tokens per second of each method's sessions over the whole "
      "run (question, answer and teacher-forcing steps, both settings), measured side by side: "
      "methods alternate sample by sample.\n\n| method | budget | decode tokens | decode tok/s "
      "|\n|---|---:|---:|---:|\n";
  for (const Method& m : run.methods) {
    const MethodSummary* r = find(t, m, -1);
    if (r == nullptr) continue;
    md += fmt::format("| {} | {} | {} | {:.1f} |\n", m.name(), budget_cell(m), r->decode_tokens,
                      r->tokens_per_second());
  }
  return md + "\n";
}

std::string perplexity_table(const EvalRun& run) {
  const PerplexityRun& p = *run.perplexity;
  std::string md = fmt::format(
      "## Perplexity: {} tokens of the text after a dense prefill of its first {} tokens\n\n",
      run.perplexity_tokens, p.prefix_tokens);
  md +=
      "Each continuation token goes through session.decode under the method (teacher forcing); "
      "`KL` and `top-1` compare each step's next-token distribution with dense; `coverage` as "
      "above.\n\n";
  md +=
      "| method | budget | resident | perplexity | mean NLL | KL | top-1 | coverage | coverage p5 "
      "| decode tok/s |\n";
  md += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const PerplexityOutcome& o : p.methods) {
    const auto n = static_cast<double>(o.tokens);
    md += fmt::format("| {} | {} | {} | {:.3f} | {:.4f} | {:.4f} | {} | {} | {} | {:.1f} |\n",
                      o.method.name(), budget_cell(o.method), percent(o.resident_fraction),
                      std::exp(o.nll_sum / n), o.nll_sum / n, o.kl_sum / n,
                      percent(static_cast<double>(o.top1_agree) / n), percent(mean_of(o.coverage)),
                      percent(percentile(o.coverage, 0.05)),
                      static_cast<double>(o.decode_tokens) / o.decode_seconds);
  }
  return md + "\n";
}

// The plot's data: one gnuplot data block per (setting, method name), one row per budget:
// budget%, exact match, its interval, coverage. Dense repeats its values at every budget.
struct PlotData {
  std::string text;
  std::vector<std::string> titles;  // per block
  std::vector<int> settings;        // per block: index into run.settings
  std::vector<double> budgets;
};

PlotData plot_data(const EvalRun& run, const EvalSummary& t) {
  PlotData d;
  std::vector<std::string> names;
  for (const Method& m : run.methods) {
    if (std::find(names.begin(), names.end(), m.name()) == names.end()) names.push_back(m.name());
    if (m.kind != MethodKind::kDense &&
        std::find(d.budgets.begin(), d.budgets.end(), m.budget) == d.budgets.end()) {
      d.budgets.push_back(m.budget);
    }
  }
  std::sort(d.budgets.begin(), d.budgets.end());
  d.text = "# budget% exact_match% low% high% coverage%\n";
  for (size_t si = 0; si < run.settings.size(); ++si) {
    for (const std::string& name : names) {
      std::string rows;
      for (const double b : d.budgets) {
        for (const Method& m : run.methods) {
          if (m.name() != name || (m.kind != MethodKind::kDense && m.budget != b)) continue;
          const MethodSummary* r = find(t, m, static_cast<int>(run.settings[si]));
          if (r == nullptr) continue;
          rows += fmt::format("{:g} {:.3f} {:.3f} {:.3f} {:.3f}\n", b * 100.0, 100.0 * r->exact.value,
                              100.0 * r->exact.low, 100.0 * r->exact.high,
                              std::isnan(r->coverage) ? 100.0 : 100.0 * r->coverage);
        }
      }
      if (rows.empty()) continue;
      d.text += fmt::format("# {} ({})\n{}\n\n", name, setting_name(run.settings[si]), rows);
      d.titles.push_back(name);
      d.settings.push_back(static_cast<int>(si));
    }
  }
  return d;
}

std::string plot_script(const EvalRun& run, const PlotData& d, const std::string& name) {
  const std::string dat = name + "-accuracy.dat";
  const size_t rows = std::max<size_t>(1, run.settings.size());
  std::string gp = fmt::format(
      "# Exact match and attention coverage vs KV budget per method (lsa-eval), with 95% Wilson\n"
      "# intervals. Run in this directory: gnuplot {}\n"
      "set terminal pngcairo size 1280,{} noenhanced\n"
      "set output '{}'\n"
      "set key outside right\n"
      "set grid\n"
      "set xlabel 'resident KV budget (% of pages)'\n"
      "set xrange [{:g}:{:g}]\n"
      "set multiplot layout {},2\n",
      name + "-accuracy.gp", 420 * rows, name + "-accuracy.png",
      d.budgets.empty() ? 0.0 : d.budgets.front() * 100.0 - 2.5,
      d.budgets.empty() ? 100.0 : d.budgets.back() * 100.0 + 2.5, rows);
  for (size_t si = 0; si < run.settings.size(); ++si) {
    const std::string tag = run.settings[si] == Setting::kPrompt ? "(a) prompt prefilled"
                                                                 : "(b) question decoded";
    std::vector<size_t> blocks;
    for (size_t k = 0; k < d.titles.size(); ++k) {
      if (d.settings[k] == static_cast<int>(si)) blocks.push_back(k);
    }
    for (const bool coverage : {false, true}) {
      gp += fmt::format("set title '{}: {}'\nset ylabel '{}'\nset yrange [{}:105]\n", tag,
                        coverage ? "attention coverage" : "exact match",
                        coverage ? "mean coverage (%)" : "exact match (%), 95% interval",
                        coverage ? 40 : 0);
      std::string plots;
      for (size_t j = 0; j < blocks.size(); ++j) {
        // A small horizontal shift per method keeps equal values from hiding each other.
        const double shift =
            (static_cast<double>(j) - static_cast<double>(blocks.size() - 1) / 2) * 0.12;
        const bool dense = d.titles[blocks[j]] == "dense";
        if (!plots.empty()) plots += ", \\\n     ";
        plots += fmt::format(
            "'{}' index {} using ($1{:+.2f}):{} with {} linewidth 2 {}title '{}'", dat, blocks[j],
            shift, coverage ? "5" : "2:3:4", coverage ? "linespoints" : "yerrorlines",
            dense ? "dashtype 2 linecolor 'black' " : "", d.titles[blocks[j]]);
      }
      gp += "plot " + plots + "\n";
    }
  }
  return gp + "unset multiplot\n";
}

}  // namespace

std::string length_label(int64_t tokens) {
  if (tokens >= 1024 && tokens % 1024 == 0) return fmt::format("{}K", tokens / 1024);
  return fmt::format("{}", tokens);
}

std::string render_markdown(const EvalRun& run, const std::string& name) {
  std::string md = fmt::format("# lsa-eval: {}\n\n", name);
  md += fmt::format("Reproduce: `{}`\n\n", run.command);
  for (const auto& [k, v] : run.facts) md += fmt::format("- {}: {}\n", k, v);
  md += fmt::format("- wall time of the run: {:.0f} s\n\n", run.seconds);
  if (!run.samples.empty()) {
    const EvalSummary t = summarize(run.samples);
    md += summary_tables(run, t) + cell_tables(run, t) + speed_table(run, t);
  }
  if (run.perplexity) md += perplexity_table(run);
  return md;
}

ReportFiles write_report(const EvalRun& run, const std::string& dir, const std::string& name) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw DecodeError(
        fmt::format("cannot create the results directory '{}': {}", dir, ec.message()));
  ReportFiles f;
  const std::filesystem::path base(dir);
  f.markdown = (base / (name + ".md")).string();
  f.samples = (base / (name + "-samples.tsv")).string();
  f.data = (base / (name + "-accuracy.dat")).string();
  f.script = (base / (name + "-accuracy.gp")).string();
  write_file(f.markdown, render_markdown(run, name));

  std::string tsv =
      "task\tlength\tdepth\tindex\texpected\tkey\tsetting\tmethod\tbudget\tcorrect\t"
      "agrees_with_dense\tsame_as_dense\tanswer\tanswer_logprob\tkl_sum\ttop1\tcompared_steps\t"
      "coverage_mean\tcoverage_p5\tresident\tdecode_tokens\tdecode_seconds\tprefill_seconds\n";
  for (const SampleRecord& r : run.samples) {
    const SampleSpec& s = r.sample.spec;
    for (const AnswerOutcome& o : r.outcome.answers) {
      tsv += fmt::format(
          "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.5f}\t{:.6f}\t{}\t{}\t{:.5f}\t{:.5f}"
          "\t{:.5f}\t{}\t{:.4f}\t{:.3f}\n",
          task_name(s.task), s.context_tokens, s.depth, s.index, r.sample.answer, r.sample.key,
          setting_name(o.setting), o.method.name(), o.method.budget, o.correct ? 1 : 0,
          o.agrees_with_dense ? 1 : 0, o.same_as_dense ? 1 : 0, tsv_field(o.text),
          o.answer_logprob, o.kl_sum, o.top1_agree, o.compared_steps, mean_of(o.coverage),
          percentile(o.coverage, 0.05), o.resident_fraction, o.decode_tokens, o.decode_seconds,
          r.outcome.prefill_seconds);
    }
  }
  write_file(f.samples, tsv);

  const EvalSummary t = summarize(run.samples);
  const PlotData d = plot_data(run, t);
  write_file(f.data, d.text);
  write_file(f.script, plot_script(run, d, name));

  if (d.budgets.empty() || run.samples.empty()) {
    f.plot_note = "no task samples or no method at a budget below 100%: nothing to plot";
    return f;
  }
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    f.plot_note =
        "gnuplot is not installed (Debian: apt-get install gnuplot-nox; scripts/setup.sh does it): "
        "the plot was not rendered; its data and script are written";
    return f;
  }
  const std::string cmd = fmt::format("cd '{}' && gnuplot '{}'", dir, name + "-accuracy.gp");
  if (std::system(cmd.c_str()) != 0) {
    f.plot_note = fmt::format("gnuplot failed on '{}'", f.script);
    return f;
  }
  f.plot = (base / (name + "-accuracy.png")).string();
  return f;
}

}  // namespace lsa_decode
