#include "eval_runner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "error.hpp"
#include "attention_trace.hpp"
#include "eval_metrics.hpp"
#include "model.hpp"
#include "session.hpp"
#include "tokenizer.hpp"

namespace lsa_decode {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Called before the token of answer step i is chosen, with that step's logits.
using StepFn = std::function<void(int64_t, std::span<const float>)>;
// Called after each decode call k of a session (question tokens first, then answer tokens).
using CallFn = std::function<void(int64_t, const Session&)>;

// A session for `method`; a configuration error names the method and the context length. The
// dense reference records its attention; oracle methods read `trace`.
std::unique_ptr<Session> open_session(const EvalContext& c, const Method& method,
                                      int64_t max_tokens,
                                      const std::shared_ptr<const AttentionTrace>& trace) {
  try {
    CacheOptions options = cache_options(
        method, max_tokens, c.shape,
        method.kind == MethodKind::kOracle ? trace : std::shared_ptr<const AttentionTrace>{},
        c.indexer);
    options.record_attention = method.kind == MethodKind::kDense;
    return make_session(c.model, options);
  } catch (const DecodeError& e) {
    throw DecodeError(
        fmt::format("method {} at {} tokens: {}", method.label(), max_tokens, e.what()));
  }
}

// The prefill states every method starts from carry the learned indexer's taps when there is one.
ForwardTaps prefill_taps(const EvalContext& c) {
  return c.indexer != nullptr ? indexer_taps(*c.indexer) : ForwardTaps{};
}

// Tokens per page of every session of a run.
int64_t page_tokens(const EvalContext& c) {
  return int64_t{c.shape.chunk_tokens} * c.shape.page_chunks;
}

// One answer decoding: the tokens and what the session measured.
struct Decoded {
  std::vector<int32_t> tokens;
  double resident_fraction = 1.0;
  int64_t decode_tokens = 0;
  double decode_seconds = 0.0;
};

// Decodes answers of one sample in one setting: a fresh session per call, started from the same
// dense prefill states, then the question tokens (setting b), then the answer.
class AnswerDecoder {
 public:
  AnswerDecoder(const EvalContext& context, std::span<const TokenState> prefix,
                std::span<const int32_t> feed, std::span<const float> first_logits,
                int64_t max_tokens)
      : c_(context),
        prefix_(prefix),
        feed_(feed),
        first_logits_(first_logits),
        max_tokens_(max_tokens) {
    const std::vector<int32_t> im_end = c_.tokenizer.encode("<|im_end|>", /*parse_special=*/true);
    im_end_ = im_end.size() == 1 ? im_end[0] : -1;
  }

  bool is_stop(int32_t id) const { return id == c_.tokenizer.eos_id() || id == im_end_; }
  // Decode calls before the first answer token is fed.
  int64_t feed_calls() const { return static_cast<int64_t>(feed_.size()); }

  // Greedy decoding (forced == nullptr) of up to max_new tokens, stopping after a stop token, or
  // teacher forcing of `forced`.
  Decoded run(const Method& method, const std::vector<int32_t>* forced,
              const std::shared_ptr<const AttentionTrace>& trace, const StepFn& on_step,
              const CallFn& on_call) const {
    auto session = open_session(c_, method, max_tokens_, trace);
    session->append_prefill(prefix_);
    Decoded d;
    auto decode = [&](int32_t token) {
      const auto t0 = Clock::now();
      const std::vector<float>& logits = session->decode(token);
      d.decode_seconds += seconds_since(t0);
      on_call(d.decode_tokens, *session);
      ++d.decode_tokens;
      return std::span<const float>(logits);
    };
    std::span<const float> logits = first_logits_;
    for (const int32_t t : feed_) logits = decode(t);
    const int64_t steps = forced != nullptr ? static_cast<int64_t>(forced->size()) : c_.max_new;
    for (int64_t i = 0; i < steps; ++i) {
      on_step(i, logits);
      const int32_t token = forced != nullptr ? (*forced)[static_cast<size_t>(i)] : argmax(logits);
      d.tokens.push_back(token);
      if (i + 1 == steps || (forced == nullptr && is_stop(token))) break;
      logits = decode(token);
    }
    d.resident_fraction = session->stats().resident_fraction;
    return d;
  }

  std::string text(const std::vector<int32_t>& tokens) const {
    std::vector<int32_t> plain;
    for (const int32_t t : tokens) {
      if (!c_.tokenizer.is_special(t)) plain.push_back(t);
    }
    return c_.tokenizer.decode(plain);
  }

 private:
  const EvalContext& c_;
  std::span<const TokenState> prefix_;
  std::span<const int32_t> feed_;
  std::span<const float> first_logits_;
  int64_t max_tokens_;
  int32_t im_end_ = -1;
};

void log(const EvalContext& c, const std::string& line) {
  if (c.log) c.log(line);
}

double mean_of(const std::vector<float>& v) {
  double sum = 0.0;
  for (const float x : v) sum += x;
  return v.empty() ? 1.0 : sum / static_cast<double>(v.size());
}

std::string outcome_line(const AnswerOutcome& o) {
  const double tps =
      o.decode_seconds > 0 ? static_cast<double>(o.decode_tokens) / o.decode_seconds : 0.0;
  return fmt::format(
      "  [{}] {:<16} {:<5} {:?} KL {:.4f} top-1 {}/{} logp {:.2f} coverage {:.1f}% resident "
      "{:.1f}% {:.1f} tok/s",
      setting_name(o.setting), o.method.label(), o.correct ? "ok" : "wrong", o.text,
      o.compared_steps > 0 ? o.kl_sum / static_cast<double>(o.compared_steps) : 0.0, o.top1_agree,
      o.compared_steps, o.answer_logprob, 100.0 * mean_of(o.coverage),
      100.0 * o.resident_fraction, tps);
}

}  // namespace

std::string_view setting_name(Setting setting) {
  return setting == Setting::kPrompt ? "prompt" : "question";
}

Setting parse_setting(std::string_view name) {
  if (name == "prompt") return Setting::kPrompt;
  if (name == "question") return Setting::kQuestion;
  throw DecodeError(fmt::format("unknown setting '{}' (settings: prompt, question)", name));
}

SampleOutcome run_sample(const EvalContext& c, const TaskSample& sample,
                         std::span<const Method> methods, std::span<const Setting> settings) {
  std::vector<int32_t> prompt = sample.context;
  prompt.insert(prompt.end(), sample.question.begin(), sample.question.end());
  const auto n = static_cast<int64_t>(prompt.size());
  const int64_t last = n - 1;
  const int64_t max_tokens = n + c.max_new;
  SampleOutcome out;
  std::vector<TokenState> states;
  std::vector<float> first_logits;
  const auto t0 = Clock::now();
  const ForwardTaps taps = prefill_taps(c);
  c.model.prefill(
      prompt, states, std::span(&last, 1),
      [&](int64_t, std::span<const float> row) { first_logits.assign(row.begin(), row.end()); }, {},
      &taps, c.shape.kv);
  out.prefill_seconds = seconds_since(t0);
  log(c, fmt::format("  prefill {} tokens in {:.1f} s", n, out.prefill_seconds));

  const Method dense{MethodKind::kDense, 1.0, 1};
  for (const Setting setting : settings) {
    const bool whole = setting == Setting::kPrompt;
    const std::span<const TokenState> all(states);
    const std::span<const TokenState> prefix = whole ? all : all.first(sample.context.size());
    const AnswerDecoder decoder(
        c, prefix, whole ? std::span<const int32_t>{} : std::span<const int32_t>(sample.question),
        whole ? std::span<const float>(first_logits) : std::span<const float>{}, max_tokens);
    // Setting a: the first answer token's logits are the dense prefill's, the same for everyone.
    const int64_t first_compared = whole ? 1 : 0;

    // The reference: dense log-probabilities per answer step, attention per decode call.
    std::vector<std::vector<float>> ref;
    auto trace = std::make_shared<AttentionTrace>(static_cast<int64_t>(prefix.size()), page_tokens(c));
    const Decoded reference = decoder.run(
        dense, nullptr, nullptr,
        [&](int64_t, std::span<const float> logits) {
          ref.emplace_back();
          log_softmax(logits, ref.back());
        },
        [&](int64_t, const Session& s) { trace->add_step(s.last_attention(), s.view_pages()); });
    const std::vector<int32_t>& answer = reference.tokens;
    const std::string dense_digits = first_digits(decoder.text(answer));
    const auto steps = static_cast<int64_t>(answer.size());

    for (const Method& method : methods) {
      AnswerOutcome o;
      o.method = method;
      o.setting = setting;
      o.answer_tokens = steps;
      std::vector<float> lp;
      auto score = [&](int64_t i, std::span<const float> logits) {
        const auto s = static_cast<size_t>(i);
        log_softmax(logits, lp);
        o.answer_logprob += lp[static_cast<size_t>(answer[s])];
        if (i < first_compared) return;
        o.kl_sum += kl_divergence(ref[s], lp);
        o.top1_agree += argmax(logits) == answer[s] ? 1 : 0;
        ++o.compared_steps;
      };
      auto cover = [&](int64_t call, const Session& s) {
        trace->coverage(call, s.view_pages(), o.coverage);
      };
      Decoded greedy;
      if (method.kind == MethodKind::kDense) {
        greedy = reference;
        for (int64_t i = 0; i < steps; ++i) {
          const auto s = static_cast<size_t>(i);
          o.answer_logprob += ref[s][static_cast<size_t>(answer[s])];
          o.compared_steps += i >= first_compared ? 1 : 0;
        }
        o.top1_agree = o.compared_steps;
        o.coverage.assign(static_cast<size_t>(trace->num_steps() * c.model.config().num_layers),
                          1.0f);
      } else {
        // Greedy: while its tokens equal the dense answer, its steps are teacher-forced ones, and
        // so are its decode calls (the question's, then the answer tokens the dense run fed).
        bool aligned = true;
        int64_t scored = 0, aligned_calls = 0;
        greedy = decoder.run(
            method, nullptr, trace,
            [&](int64_t i, std::span<const float> logits) {
              if (!aligned || i >= steps) return;
              score(i, logits);
              scored = i + 1;
              aligned = argmax(logits) == answer[static_cast<size_t>(i)];
            },
            [&](int64_t call, const Session& s) {
              if (call < decoder.feed_calls() || aligned) {
                cover(call, s);
                aligned_calls = call + 1;
              }
            });
        o.decode_tokens += greedy.decode_tokens;
        o.decode_seconds += greedy.decode_seconds;
        if (scored < steps) {  // it diverged: teacher-force the rest of the dense answer
          const Decoded forced = decoder.run(
              method, &answer, trace,
              [&](int64_t i, std::span<const float> logits) {
                if (i >= scored) score(i, logits);
              },
              [&](int64_t call, const Session& s) {
                if (call >= aligned_calls) cover(call, s);
              });
          o.decode_tokens += forced.decode_tokens;
          o.decode_seconds += forced.decode_seconds;
        }
      }
      if (method.kind == MethodKind::kDense) {
        o.decode_tokens = greedy.decode_tokens;
        o.decode_seconds = greedy.decode_seconds;
      }
      o.tokens = greedy.tokens;
      o.text = decoder.text(greedy.tokens);
      o.correct = first_digits(o.text) == sample.answer;
      o.same_as_dense = greedy.tokens == answer;
      o.agrees_with_dense = first_digits(o.text) == dense_digits;
      o.resident_fraction = greedy.resident_fraction;
      log(c, outcome_line(o));
      out.answers.push_back(std::move(o));
    }
  }
  return out;
}

PerplexityRun run_perplexity(const EvalContext& c, std::span<const int32_t> text, int64_t prefix,
                             int64_t n, std::span<const Method> methods) {
  if (prefix < 1 || n < 1 || static_cast<int64_t>(text.size()) < prefix + n + 1) {
    throw DecodeError(
        fmt::format("perplexity needs a prefix and a continuation of >= 1 token each and prefix + "
                    "continuation + 1 <= "
                    "the text's {} tokens (got {} + {})",
                    text.size(), prefix, n));
  }
  PerplexityRun run;
  run.prefix_tokens = prefix;
  std::vector<TokenState> states;
  const auto t0 = Clock::now();
  const ForwardTaps taps = prefill_taps(c);
  c.model.prefill(
      text.first(static_cast<size_t>(prefix)), states, {}, [](int64_t, std::span<const float>) {},
      {}, &taps, c.shape.kv);
  run.prefill_seconds = seconds_since(t0);
  log(c, fmt::format("  prefill {} tokens in {:.1f} s", prefix, run.prefill_seconds));

  std::vector<std::vector<float>> ref;  // dense log-probabilities per step
  auto trace = std::make_shared<AttentionTrace>(prefix, page_tokens(c));
  auto measure = [&](const Method& method, bool reference) {
    PerplexityOutcome o;
    o.method = method;
    auto session = open_session(c, method, prefix + n, trace);
    session->append_prefill(states);
    std::vector<float> lp;
    for (int64_t i = 0; i < n; ++i) {
      const auto t = Clock::now();
      const std::vector<float>& logits = session->decode(text[static_cast<size_t>(prefix + i)]);
      o.decode_seconds += seconds_since(t);
      ++o.decode_tokens;
      log_softmax(logits, lp);
      o.nll_sum -= lp[static_cast<size_t>(text[static_cast<size_t>(prefix + i + 1)])];
      ++o.tokens;
      if (reference) {
        trace->add_step(session->last_attention(), session->view_pages());
        ref.push_back(lp);
        ++o.top1_agree;
      } else {
        const std::vector<float>& r = ref[static_cast<size_t>(i)];
        o.kl_sum += kl_divergence(r, lp);
        o.top1_agree += argmax(logits) == argmax(r) ? 1 : 0;
      }
      trace->coverage(i, session->view_pages(), o.coverage);
    }
    o.resident_fraction = session->stats().resident_fraction;
    log(c, fmt::format("  {:<16} ppl {:.3f}  KL {:.4f}  top-1 {:.1f}%  coverage {:.1f}%  resident "
                       "{:.1f}%  {:.1f} tok/s",
                       method.label(), std::exp(o.nll_sum / static_cast<double>(o.tokens)),
                       o.kl_sum / static_cast<double>(o.tokens),
                       100.0 * static_cast<double>(o.top1_agree) / static_cast<double>(o.tokens),
                       100.0 * mean_of(o.coverage), 100.0 * o.resident_fraction,
                       static_cast<double>(o.decode_tokens) / o.decode_seconds));
    return o;
  };
  const Method dense{MethodKind::kDense, 1.0, 1};
  const PerplexityOutcome reference = measure(dense, true);
  for (const Method& method : methods) {
    run.methods.push_back(method.kind == MethodKind::kDense ? reference : measure(method, false));
  }
  return run;
}

}  // namespace lsa_decode
