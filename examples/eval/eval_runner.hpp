// Runs lsa-eval's methods on a sample: one dense prefill, then a fresh lsa session per method that
// starts from the same prefill states ("fork"), so methods differ only in decoding.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eval_methods.hpp"
#include "eval_tasks.hpp"
#include "indexer_file.hpp"

namespace lsa_decode {

class LlamaModel;
class Tokenizer;

/// Where the question goes.
enum class Setting {
  kPrompt,    ///< (a) the paper's: the whole prompt, question included, is prefilled dense
  kQuestion,  ///< (b) the haystack is prefilled dense; the question is decoded under the method
};

/// "prompt", "question".
std::string_view setting_name(Setting setting);
/// Parses a setting_name; throws DecodeError naming the value otherwise.
Setting parse_setting(std::string_view name);

/// What the runs share.
struct EvalContext {
  const LlamaModel& model;
  const Tokenizer& tokenizer;
  CacheShape shape;                             ///< chunk and page sizes, sink and recent chunks
  int32_t max_new = 12;                         ///< answer tokens generated at most
  std::shared_ptr<const IndexerFile> indexer;   ///< for learned-iN methods (may be null)
  std::function<void(const std::string&)> log;  ///< progress lines; may be empty
};

/// One method on one sample in one setting. The dense answer (greedy under the dense session of
/// the same setting) is the reference of the fidelity numbers.
struct AnswerOutcome {
  Method method;
  Setting setting = Setting::kPrompt;
  std::vector<int32_t> tokens;  ///< greedy answer tokens (a final stop token included)
  std::string text;             ///< their text, special tokens left out
  bool correct = false;         ///< first_digits(text) == the expected answer
  bool same_as_dense = false;   ///< tokens equal the dense answer's
  bool agrees_with_dense = false;  ///< first_digits(text) equals the dense answer's
  double answer_logprob = 0.0;  ///< sum of log p(dense answer token), teacher-forced
  int64_t answer_tokens = 0;    ///< tokens of the dense answer
  double kl_sum = 0.0;          ///< sum over compared steps of KL(dense || method), nats
  int64_t top1_agree = 0;       ///< compared steps whose argmax is the dense token
  int64_t compared_steps = 0;   ///< answer steps decoded under the method (setting a: all but the
                                ///< first, whose logits come from the shared dense prefill)
  double resident_fraction = 1.0;  ///< Session::stats() after the answer
  int64_t decode_tokens = 0;       ///< session.decode calls (question, answer, teacher forcing)
  double decode_seconds = 0.0;     ///< their wall time
  /// Per decode step fed the dense run's token (question and answer, greedy while it agrees,
  /// then teacher-forced), per layer: the share of the dense step's attention mass on the
  /// method's pages (AttentionTrace::coverage).
  std::vector<float> coverage;
};

/// Everything run_sample measured.
struct SampleOutcome {
  double prefill_seconds = 0.0;
  std::vector<AnswerOutcome> answers;  ///< per setting, per method (in the order given)
};

/// Prefills sample.context + sample.question once (dense), then per setting decodes the answer
/// under the dense session (the reference, which records its attention for the oracles and the
/// coverage) and under every method. `methods` may omit dense (the reference still runs; its
/// outcome is then not returned).
SampleOutcome run_sample(const EvalContext& context, const TaskSample& sample,
                         std::span<const Method> methods, std::span<const Setting> settings);

/// One method on the long-text continuation.
struct PerplexityOutcome {
  Method method;
  int64_t tokens = 0;      ///< predictions scored
  double nll_sum = 0.0;    ///< sum of -log p(next token), nats
  double kl_sum = 0.0;     ///< sum of KL(dense || method)
  int64_t top1_agree = 0;  ///< steps whose argmax is the dense argmax
  double resident_fraction = 1.0;
  int64_t decode_tokens = 0;
  double decode_seconds = 0.0;
  std::vector<float> coverage;  ///< per step and layer, as AnswerOutcome::coverage
};

/// Everything run_perplexity measured.
struct PerplexityRun {
  int64_t prefix_tokens = 0;
  double prefill_seconds = 0.0;
  std::vector<PerplexityOutcome> methods;
};

/// Prefills text[0, prefix) dense, then per method feeds text[prefix, prefix + n) through
/// session.decode (teacher forcing) and scores each step's prediction of the following token.
/// Throws DecodeError when the text has fewer than prefix + n + 1 tokens.
PerplexityRun run_perplexity(const EvalContext& context, std::span<const int32_t> text,
                             int64_t prefix, int64_t n, std::span<const Method> methods);

}  // namespace lsa_decode
