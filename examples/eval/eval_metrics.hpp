// The arithmetic lsa-eval scores with: log-softmax, KL divergence, greedy argmax, digit matching.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lsa_decode {

/// out = log softmax(logits), accumulated in double.
void log_softmax(std::span<const float> logits, std::vector<float>& out);

/// KL(p || q) in nats from the log-probabilities of two distributions over the same vocabulary.
double kl_divergence(std::span<const float> log_p, std::span<const float> log_q);

/// Index of the largest value, the lowest index on ties (greedy decoding).
int32_t argmax(std::span<const float> values);

/// The first run of decimal digits in `text` ("" when there is none): what an answer is scored by.
std::string first_digits(std::string_view text);

}  // namespace lsa_decode
