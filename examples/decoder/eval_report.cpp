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

namespace lsa_decode {
namespace {

// Sums over answer outcomes.
struct Tally {
  int64_t correct = 0, total = 0;
  double logprob = 0.0, kl = 0.0, resident = 0.0, seconds = 0.0;
  int64_t top1 = 0, steps = 0, tokens = 0;

  void add(const AnswerOutcome& o) {
    correct += o.correct ? 1 : 0;
    ++total;
    logprob += o.answer_logprob;
    kl += o.kl_sum;
    top1 += o.top1_agree;
    steps += o.compared_steps;
    resident += o.resident_fraction;
    tokens += o.decode_tokens;
    seconds += o.decode_seconds;
  }
  double accuracy() const {
    return total > 0 ? 100.0 * static_cast<double>(correct) / static_cast<double>(total) : NAN;
  }
  double mean_logprob() const { return total > 0 ? logprob / static_cast<double>(total) : NAN; }
  double mean_kl() const { return steps > 0 ? kl / static_cast<double>(steps) : NAN; }
  double top1_percent() const {
    return steps > 0 ? 100.0 * static_cast<double>(top1) / static_cast<double>(steps) : NAN;
  }
  double mean_resident() const { return total > 0 ? resident / static_cast<double>(total) : NAN; }
  double tokens_per_second() const {
    return seconds > 0 ? static_cast<double>(tokens) / seconds : NAN;
  }
};

// Tallies by (method label, setting, task, length); task -1 / length 0 mean "all".
using Key = std::tuple<std::string, int, int, int64_t>;

std::map<Key, Tally> tally(const EvalRun& run) {
  std::map<Key, Tally> t;
  for (const SampleRecord& r : run.samples) {
    const int task = static_cast<int>(r.sample.spec.task);
    const int64_t length = r.sample.spec.context_tokens;
    for (const AnswerOutcome& o : r.outcome.answers) {
      const std::string m = o.method.label();
      const int s = static_cast<int>(o.setting);
      t[{m, s, task, length}].add(o);
      t[{m, s, -1, 0}].add(o);
      t[{m, -1, -1, 0}].add(o);  // both settings
    }
  }
  return t;
}

std::string percent(double v, int decimals = 0) {
  return std::isnan(v) ? "-" : fmt::format("{:.{}f}%", v, decimals);
}

std::string budget_cell(const Method& m) {
  return m.kind == MethodKind::kDense ? "100%"
                                      : fmt::format("{:g}%", std::round(m.budget * 1000.0) / 10.0);
}

std::string setting_title(Setting s) {
  return s == Setting::kPrompt ? "setting (a) `prompt`: the whole prompt, question included, "
                                 "prefilled dense; the answer "
                                 "decoded under the method (the paper's setting)"
                               : "setting (b) `question`: the haystack prefilled dense; the "
                                 "question and the answer decoded "
                                 "token by token under the method";
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

// The accuracy tables (one per setting) and the fidelity table of the retrieval tasks.
std::string task_tables(const EvalRun& run, const std::map<Key, Tally>& t) {
  auto get = [&](const Key& k) {
    const auto it = t.find(k);
    return it == t.end() ? Tally{} : it->second;
  };
  std::string md;
  // Accuracy per setting: rows are methods, columns task x length.
  md += "## Accuracy: exact match of the answer's digits\n\n";
  md += "Cells are correct/samples; `all` pools every task and length.\n\n";
  for (const Setting s : run.settings) {
    md += fmt::format("### {}\n\n", setting_title(s));
    md += "| method | budget | resident |";
    std::string rule = "|---|---:|---:|";
    for (const TaskKind task : run.tasks) {
      for (const int64_t len : run.lengths) {
        md += fmt::format(" {} {} |", task_name(task), length_label(len));
        rule += "---:|";
      }
    }
    md += " all |\n" + rule + "---:|\n";
    for (const Method& m : run.methods) {
      const Tally all = get({m.label(), static_cast<int>(s), -1, 0});
      md += fmt::format("| {} | {} | {} |", m.name(), budget_cell(m),
                        percent(100.0 * all.mean_resident(), 1));
      for (const TaskKind task : run.tasks) {
        for (const int64_t len : run.lengths) {
          const Tally c = get({m.label(), static_cast<int>(s), static_cast<int>(task), len});
          md += c.total > 0 ? fmt::format(" {}/{} |", c.correct, c.total) : " - |";
        }
      }
      md += fmt::format(" **{}** |\n", percent(all.accuracy()));
    }
    md += "\n";
  }

  // Fidelity to dense on the answer steps.
  md += "## Fidelity to dense on the answer steps\n\n";
  md +=
      "`logp`: mean over samples of the log-probability (nats) the method gives the dense answer's "
      "tokens (teacher-forced); `KL`: mean KL(dense || method) per answer step decoded under the "
      "method; `top-1`: share of those steps whose argmax is the dense token; `tok/s`: decode "
      "tokens per second of the method's sessions over the whole run (question, answer and "
      "teacher-forcing steps), measured side by side.\n\n";
  md += "| method | budget |";
  std::string rule = "|---|---:|";
  for (const Setting s : run.settings) {
    const char* tag = s == Setting::kPrompt ? "(a)" : "(b)";
    md += fmt::format(" logp {0} | KL {0} | top-1 {0} |", tag);
    rule += "---:|---:|---:|";
  }
  md += " resident | decode tok/s |\n" + rule + "---:|---:|\n";
  for (const Method& m : run.methods) {
    md += fmt::format("| {} | {} |", m.name(), budget_cell(m));
    for (const Setting s : run.settings) {
      const Tally c = get({m.label(), static_cast<int>(s), -1, 0});
      md += fmt::format(" {:.2f} | {:.4f} | {} |", c.mean_logprob(), c.mean_kl(),
                        percent(c.top1_percent(), 1));
    }
    const Tally both = get({m.label(), -1, -1, 0});
    md += fmt::format(" {} | {:.1f} |\n", percent(100.0 * both.mean_resident(), 1),
                      both.tokens_per_second());
  }
  md += "\n";
  return md;
}

}  // namespace

std::string length_label(int64_t tokens) {
  if (tokens >= 1024 && tokens % 1024 == 0) return fmt::format("{}K", tokens / 1024);
  return fmt::format("{}", tokens);
}

std::string render_markdown(const EvalRun& run, const std::string& name) {
  const std::map<Key, Tally> t = tally(run);
  std::string md = fmt::format("# lsa-eval: {}\n\n", name);
  md += fmt::format("Reproduce: `{}`\n\n", run.command);
  for (const auto& [k, v] : run.facts) md += fmt::format("- {}: {}\n", k, v);
  md += fmt::format("- wall time of the run: {:.0f} s\n\n", run.seconds);

  if (!run.samples.empty()) md += task_tables(run, t);

  if (run.perplexity) {
    const PerplexityRun& p = *run.perplexity;
    md += fmt::format(
        "## Perplexity: {} tokens of the text after a dense prefill of its first {} tokens\n\n",
        run.perplexity_tokens, p.prefix_tokens);
    md +=
        "Each continuation token goes through session.decode under the method (teacher forcing); "
        "`KL` and `top-1` compare each step's next-token distribution with dense.\n\n";
    md += "| method | budget | resident | perplexity | mean NLL | KL | top-1 | decode tok/s |\n";
    md += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const PerplexityOutcome& o : p.methods) {
      const double n = static_cast<double>(o.tokens);
      md += fmt::format(
          "| {} | {} | {} | {:.3f} | {:.4f} | {:.4f} | {} | {:.1f} |\n", o.method.name(),
          budget_cell(o.method), percent(100.0 * o.resident_fraction, 1), std::exp(o.nll_sum / n),
          o.nll_sum / n, o.kl_sum / n, percent(100.0 * static_cast<double>(o.top1_agree) / n, 1),
          static_cast<double>(o.decode_tokens) / o.decode_seconds);
    }
    md += "\n";
  }
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
      "task\tlength\tdepth\tindex\texpected\tkey\tsetting\tmethod\tbudget\tcorrect\tsame_as_"
      "dense\tanswer"
      "\tanswer_logprob\tkl_sum\ttop1\tcompared_steps\tresident\tdecode_tokens\tdecode_"
      "seconds\tprefill_seconds\n";
  for (const SampleRecord& r : run.samples) {
    const SampleSpec& s = r.sample.spec;
    for (const AnswerOutcome& o : r.outcome.answers) {
      tsv += fmt::format(
          "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.5f}\t{:.6f}\t{}\t{}\t{:.5f}\t{}\t{:."
          "4f}\t{:.3f}\n",
          task_name(s.task), s.context_tokens, s.depth, s.index, r.sample.answer, r.sample.key,
          setting_name(o.setting), o.method.name(), o.method.budget, o.correct ? 1 : 0,
          o.same_as_dense ? 1 : 0, tsv_field(o.text), o.answer_logprob, o.kl_sum, o.top1_agree,
          o.compared_steps, o.resident_fraction, o.decode_tokens, o.decode_seconds,
          r.outcome.prefill_seconds);
    }
  }
  write_file(f.samples, tsv);

  // Plot data: one row per budget; per setting, the pooled accuracy of each method family (dense
  // repeated on every row so that it draws as a horizontal line).
  const std::map<Key, Tally> t = tally(run);
  std::vector<std::string> families;
  std::vector<double> budgets;
  bool dense = false;
  for (const Method& m : run.methods) {
    if (m.kind == MethodKind::kDense) {
      dense = true;
      continue;
    }
    if (std::find(families.begin(), families.end(), m.name()) == families.end())
      families.push_back(m.name());
    if (std::find(budgets.begin(), budgets.end(), m.budget) == budgets.end())
      budgets.push_back(m.budget);
  }
  std::sort(budgets.begin(), budgets.end());
  auto accuracy = [&](const std::string& label, Setting s) {
    const auto it = t.find({label, static_cast<int>(s), -1, 0});
    return it == t.end() || it->second.total == 0 ? std::string("?")
                                                  : fmt::format("{:.2f}", it->second.accuracy());
  };
  std::string dat = "# budget%";
  for (const Setting s : run.settings) {
    if (dense) dat += fmt::format(" dense({})", setting_name(s));
    for (const std::string& fam : families) dat += fmt::format(" {}({})", fam, setting_name(s));
  }
  dat += "\n";
  for (const double b : budgets) {
    dat += fmt::format("{:g}", b * 100.0);
    for (const Setting s : run.settings) {
      if (dense) dat += fmt::format(" {}", accuracy("dense", s));
      for (const std::string& fam : families) {
        std::string label = "?";
        for (const Method& m : run.methods) {
          if (m.name() == fam && m.budget == b) label = m.label();
        }
        dat += fmt::format(" {}", label == "?" ? std::string("?") : accuracy(label, s));
      }
    }
    dat += "\n";
  }
  write_file(f.data, dat);

  const std::string dat_name = name + "-accuracy.dat", png_name = name + "-accuracy.png";
  std::string gp = fmt::format(
      "# Accuracy vs KV budget per method (lsa-eval). Run in this directory: gnuplot {}\n"
      "set terminal pngcairo size {},480 noenhanced\n"
      "set output '{}'\n"
      "set datafile missing '?'\n"
      "set key outside right\n"
      "set grid\n"
      "set xlabel 'resident KV budget (% of pages)'\n"
      "set ylabel 'exact-match accuracy (%)'\n"
      "set yrange [0:105]\n"
      "set xrange [{:g}:{:g}]\n"
      "set multiplot layout 1,{}\n",
      name + "-accuracy.gp", 640 * std::max<size_t>(1, run.settings.size()), png_name,
      budgets.empty() ? 0.0 : budgets.front() * 100.0 - 2.5,
      budgets.empty() ? 100.0 : budgets.back() * 100.0 + 2.5,
      std::max<size_t>(1, run.settings.size()));
  const size_t per_setting = families.size() + (dense ? 1 : 0);
  for (size_t si = 0; si < run.settings.size(); ++si) {
    gp += fmt::format("set title '{}'\n", run.settings[si] == Setting::kPrompt
                                              ? "(a) prompt prefilled, answer under the method"
                                              : "(b) question + answer under the method");
    std::string plots;
    size_t col = 2 + si * per_setting;
    if (dense) {  // a constant: drawn across the whole budget axis
      const std::string acc = accuracy("dense", run.settings[si]);
      if (acc != "?")
        plots += fmt::format("{} with lines dashtype 2 linewidth 2 linecolor 'black' title 'dense'",
                             acc);
      ++col;
    }
    for (size_t k = 0; k < families.size(); ++k) {
      // A small horizontal shift per method keeps equal accuracies from hiding each other.
      const double shift =
          (static_cast<double>(k) - static_cast<double>(families.size() - 1) / 2) * 0.15;
      if (!plots.empty()) plots += ", \\\n     ";
      plots += fmt::format(
          "'{}' using ($1{:+.2f}):{} with linespoints linewidth 2 pointsize 1.3 title '{}'",
          dat_name, shift, col++, families[k]);
    }
    gp += "plot " + plots + "\n";
  }
  gp += "unset multiplot\n";
  write_file(f.script, gp);

  if (budgets.empty() || run.samples.empty()) {
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
  f.plot = (base / png_name).string();
  return f;
}

}  // namespace lsa_decode
