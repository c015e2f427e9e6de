#include "eval_summary.hpp"

#include <cmath>

#include "eval_report.hpp"

namespace lsa_decode {
namespace {

// What is collected per (method, setting) before the intervals are computed.
struct Pool {
  MethodSummary s;
  std::vector<double> kl, top1;
  std::vector<float> coverage;

  void add(const AnswerOutcome& o) {
    ++s.samples;
    s.correct += o.correct ? 1 : 0;
    s.agree += o.agrees_with_dense ? 1 : 0;
    s.logprob += o.answer_logprob;
    s.resident += o.resident_fraction;
    s.decode_tokens += o.decode_tokens;
    s.decode_seconds += o.decode_seconds;
    if (o.compared_steps > 0) {
      const auto steps = static_cast<double>(o.compared_steps);
      kl.push_back(o.kl_sum / steps);
      top1.push_back(static_cast<double>(o.top1_agree) / steps);
    }
    coverage.insert(coverage.end(), o.coverage.begin(), o.coverage.end());
  }

  MethodSummary finish() const {
    MethodSummary out = s;
    const auto n = static_cast<double>(s.samples);
    out.exact = wilson_interval(s.correct, s.samples);
    out.agreement = wilson_interval(s.agree, s.samples);
    out.kl = mean_interval(kl);
    out.top1 = mean_interval(top1);
    out.logprob = s.logprob / n;
    out.resident = s.resident / n;
    if (!coverage.empty()) {
      double sum = 0.0;
      for (const float c : coverage) sum += c;
      out.coverage = sum / static_cast<double>(coverage.size());
      out.coverage_p5 = percentile(coverage, 0.05);
    }
    return out;
  }
};

}  // namespace

EvalSummary summarize(const std::vector<SampleRecord>& samples) {
  std::map<SummaryKey, Pool> pools;
  EvalSummary out;
  for (const SampleRecord& r : samples) {
    const int task = static_cast<int>(r.sample.spec.task);
    const int64_t length = r.sample.spec.context_tokens;
    for (const AnswerOutcome& o : r.outcome.answers) {
      const std::string m = o.method.label();
      const int setting = static_cast<int>(o.setting);
      pools[{m, setting}].add(o);
      pools[{m, -1}].add(o);
      auto& cell = out.cells[{m, setting, task, length}];
      cell.first += o.correct ? 1 : 0;
      ++cell.second;
    }
  }
  for (const auto& [key, pool] : pools) out.methods[key] = pool.finish();
  return out;
}

}  // namespace lsa_decode
