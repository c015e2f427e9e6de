// RULER-style retrieval tasks over real text for lsa-eval: a pass key, a single key -> value
// needle, and several key -> value needles of which one is asked, hidden in a haystack of verses.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "haystack.hpp"

namespace lsa_decode {

class Tokenizer;

/// Which retrieval task a sample poses.
enum class TaskKind {
  kPasskey,       ///< "The pass key is 12345. Remember it. 12345 is the pass key." -> the pass key
  kSingleNeedle,  ///< "The special magic number for <word> is <7 digits>." -> the number
  kMultiKey,      ///< several such needles (distractors with other words); one word is asked
};

/// The words the key -> value needles ask about (the indexer's training data must avoid them).
std::span<const std::string_view> needle_words();

/// "passkey", "single", "multikey".
std::string_view task_name(TaskKind task);
/// Parses a task_name; throws DecodeError naming the value otherwise.
TaskKind parse_task(std::string_view name);

/// What to generate: one sample of a task at a context length and needle depth.
struct SampleSpec {
  TaskKind task = TaskKind::kPasskey;
  int64_t context_tokens = 2048;  ///< prompt + answer tokens (the prompt gets this minus max_new)
  double depth = 0.5;             ///< where the asked needle goes, as a fraction of the haystack
  int32_t index = 0;              ///< sample number within its (task, length) cell
  uint64_t seed = 0;              ///< run seed; the sample's draws depend on it and on the above
  int32_t max_new = 12;           ///< answer tokens the context must leave room for
  int32_t num_keys = 4;           ///< kMultiKey: needles, the asked one included
};

/// One generated sample: prompt tokens split where the question starts, and the expected answer.
struct TaskSample {
  SampleSpec spec;
  /// Chat header, instruction and the haystack with its needle(s): prefilled dense in both
  /// evaluation settings.
  std::vector<int32_t> context;
  /// The question, the end of the user turn, the assistant header and the answer prefix (e.g.
  /// "The pass key is"): prefilled (setting a) or decoded token by token (setting b).
  std::vector<int32_t> question;
  std::string answer;           ///< expected digits
  std::string key;              ///< the word asked about ("" for the pass key)
  int64_t needle_position = 0;  ///< token offset of the asked needle in `context`
};

/// Builds a sample: the user message is "<instruction>\n\n<haystack>\n\n<question>" in the chat
/// template (Tokenizer::chat_prompt), and the assistant turn starts with an answer prefix as in
/// RULER. The haystack starts at a random verse and is cut so that the prompt has exactly
/// context_tokens - max_new tokens; needles go between verses, each on a line of its own (the
/// asked one at the boundary nearest `depth`, distractors at random boundaries). Deterministic in
/// the spec. Throws
/// DecodeError when the context is too short to hold the task.
TaskSample make_sample(const Tokenizer& tokenizer, const Haystack& haystack,
                       const SampleSpec& spec);

}  // namespace lsa_decode
