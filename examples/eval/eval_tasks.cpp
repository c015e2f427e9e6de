#include "eval_tasks.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <sstream>

#include "error.hpp"
#include "draws.hpp"
#include "tokenizer.hpp"

namespace lsa_decode {
namespace {

// Keys of the key -> value needles: everyday words that do not occur in Genesis.
constexpr std::array<std::string_view, 40> kWords = {
    "violin",     "telescope", "penguin",   "bicycle",    "umbrella",   "volcano",   "keyboard",
    "satellite",  "cactus",    "saxophone", "lighthouse", "microscope", "kangaroo",  "pyramid",
    "helicopter", "avocado",   "compass",   "dolphin",    "glacier",    "harmonica", "igloo",
    "jellyfish",  "koala",     "lantern",   "marathon",   "notebook",   "origami",   "parachute",
    "quartz",     "robot",     "snowflake", "tornado",    "ukulele",    "vaccine",   "walrus",
    "xylophone",  "yogurt",    "zeppelin",  "balloon",    "chimney"};

std::string digits(Draws& draws, int n) {
  uint64_t lo = 1;
  for (int i = 1; i < n; ++i) lo *= 10;
  return fmt::format("{}", lo + draws.below(9 * lo));  // n digits, no leading zero
}

std::string magic_sentence(std::string_view word, const std::string& value) {
  return fmt::format("The special magic number for {} is {}.", word, value);
}

void append(std::vector<int32_t>& out, const std::vector<int32_t>& more) {
  out.insert(out.end(), more.begin(), more.end());
}

}  // namespace

std::span<const std::string_view> needle_words() { return kWords; }

std::string_view task_name(TaskKind task) {
  switch (task) {
    case TaskKind::kPasskey:
      return "passkey";
    case TaskKind::kSingleNeedle:
      return "single";
    case TaskKind::kMultiKey:
      return "multikey";
  }
  return "?";
}

TaskKind parse_task(std::string_view name) {
  for (TaskKind t : {TaskKind::kPasskey, TaskKind::kSingleNeedle, TaskKind::kMultiKey}) {
    if (task_name(t) == name) return t;
  }
  throw DecodeError(fmt::format("unknown task '{}' (tasks: passkey, single, multikey)", name));
}

TaskSample make_sample(const Tokenizer& tokenizer, const Haystack& haystack,
                       const SampleSpec& spec) {
  if (!(spec.depth >= 0.0 && spec.depth <= 1.0)) {
    throw DecodeError(fmt::format("needle depth must be in [0, 1] (got {})", spec.depth));
  }
  if (spec.task == TaskKind::kMultiKey &&
      (spec.num_keys < 2 || spec.num_keys > static_cast<int32_t>(kWords.size()))) {
    throw DecodeError(
        fmt::format("multikey needs 2..{} keys (got {})", kWords.size(), spec.num_keys));
  }
  Draws draws(mix64(mix64(mix64(spec.seed) ^ static_cast<uint64_t>(spec.task)) ^
                    static_cast<uint64_t>(spec.context_tokens)) ^
              static_cast<uint64_t>(spec.index));
  TaskSample s;
  s.spec = spec;

  // Needles: the asked one first, then the distractors (multikey), each with its own word and
  // value.
  std::vector<std::string> needles;
  std::string instruction, question, answer_prefix;
  if (spec.task == TaskKind::kPasskey) {
    s.answer = digits(draws, 5);
    needles.push_back(
        fmt::format("The pass key is {0}. Remember it. {0} is the pass key.", s.answer));
    instruction =
        "There is an important pass key hidden inside a lot of irrelevant text. Find it and "
        "memorize "
        "it. I will quiz you about the pass key.";
    question = "What is the pass key mentioned in the provided text?";
    answer_prefix = "The pass key mentioned in the provided text is";
  } else {
    const int32_t keys = spec.task == TaskKind::kMultiKey ? spec.num_keys : 1;
    std::vector<size_t> words(kWords.size());
    for (size_t i = 0; i < words.size(); ++i) words[i] = i;
    for (int32_t k = 0; k < keys; ++k) {  // partial Fisher-Yates: distinct words
      std::swap(words[static_cast<size_t>(k)],
                words[k + draws.below(words.size() - static_cast<size_t>(k))]);
      const std::string value = digits(draws, 7);
      if (k == 0) {
        s.key = std::string(kWords[words[0]]);
        s.answer = value;
      }
      needles.push_back(magic_sentence(kWords[words[static_cast<size_t>(k)]], value));
    }
    instruction =
        "Some special magic numbers are hidden within the following text. Make sure to memorize "
        "them. I will quiz you about the numbers afterwards.";
    question = fmt::format(
        "What is the special magic number for {} mentioned in the provided text?", s.key);
    answer_prefix =
        fmt::format("The special magic number for {} mentioned in the provided text is", s.key);
  }

  // The chat template around a marker gives the header and the end of the user turn.
  constexpr std::string_view kMarker = "\x01lsa-eval\x01";
  const std::string chat = Tokenizer::chat_prompt({{"user", std::string(kMarker)}});
  const size_t at = chat.find(kMarker);
  const std::string header = chat.substr(0, at), footer = chat.substr(at + kMarker.size());

  std::vector<int32_t> head = tokenizer.encode(header, /*parse_special=*/true);
  append(head, tokenizer.encode(instruction + "\n\n", false));
  s.question = tokenizer.encode("\n\n" + question, false);
  append(s.question, tokenizer.encode(footer, /*parse_special=*/true));
  append(s.question, tokenizer.encode(answer_prefix, false));
  std::vector<std::vector<int32_t>> needle_ids;
  int64_t needle_tokens = 0;
  for (const std::string& n : needles) {
    needle_ids.push_back(tokenizer.encode("\n" + n + "\n", false));
    needle_tokens += static_cast<int64_t>(needle_ids.back().size());
  }
  const int64_t prompt_tokens = spec.context_tokens - spec.max_new;
  const int64_t fixed = static_cast<int64_t>(head.size() + s.question.size()) + needle_tokens;
  const int64_t body = prompt_tokens - fixed;
  if (body < 16) {
    throw DecodeError(fmt::format(
        "context length {} is too short for task {}: the template, question, needles and {} answer "
        "tokens take {} tokens",
        spec.context_tokens, task_name(spec.task), spec.max_new, fixed + spec.max_new));
  }

  // Haystack from a random verse on; needles at verse boundaries (asked one nearest `depth`).
  std::vector<int64_t> bounds;
  const std::vector<int32_t> hay = haystack.tokens(
      static_cast<int64_t>(draws.below(static_cast<uint64_t>(haystack.num_pieces()))), body,
      &bounds);
  auto nearest = [&](double fraction) {
    const double want = fraction * static_cast<double>(body);
    return *std::min_element(bounds.begin(), bounds.end(), [&](int64_t a, int64_t b) {
      return std::abs(static_cast<double>(a) - want) < std::abs(static_cast<double>(b) - want);
    });
  };
  std::vector<std::pair<int64_t, size_t>> places;  // (haystack offset, needle), in insertion order
  places.emplace_back(nearest(spec.depth), 0);
  for (size_t k = 1; k < needle_ids.size(); ++k) places.emplace_back(nearest(draws.unit()), k);
  std::stable_sort(places.begin(), places.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  s.context = std::move(head);
  s.context.reserve(static_cast<size_t>(prompt_tokens));
  int64_t done = 0;
  for (const auto& [offset, k] : places) {
    s.context.insert(s.context.end(), hay.begin() + done, hay.begin() + offset);
    done = offset;
    if (k == 0) s.needle_position = static_cast<int64_t>(s.context.size());
    append(s.context, needle_ids[k]);
  }
  s.context.insert(s.context.end(), hay.begin() + done, hay.end());
  return s;
}

}  // namespace lsa_decode
