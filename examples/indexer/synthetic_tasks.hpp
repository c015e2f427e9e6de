// Synthetic retrieval documents for the memory indexer's training: short notes scattered through
// training text, then a question about one of them and its answer, in the model's chat template.
// They share no template, word list or number with lsa-eval's tasks (eval_tasks.cpp): other
// sentences, names and objects instead of the eval's 40 words, and numbers of 2, 3, 4, 6, 8 or 9
// digits where the eval uses 5 and 7 (tests/indexer/synthetic_vocabulary_test.cpp checks the
// words).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lsa_decode {
class Haystack;
class Tokenizer;
}  // namespace lsa_decode

namespace lsa_indexer {

/// One generated document, teacher-forced through the answer.
struct SyntheticDoc {
  std::vector<int32_t> tokens;  ///< chat header, instruction, text with notes, question, answer
  int64_t question_start = 0;   ///< first token of the question
  int64_t answer_start = 0;     ///< first token after the answer prefix (the answer itself)
  std::vector<int64_t> note_positions;  ///< first token of each note; the asked one first
  std::string question;                 ///< the question's text
  std::string answer;                   ///< the answer's text
};

/// The words and numbers the notes draw from (tests check them against the eval's).
struct SyntheticVocabulary {
  static const std::vector<std::string>& names();
  static const std::vector<std::string>& cities();
  static const std::vector<std::string>& things();
  /// Every word a note can contain that is not a number.
  static std::vector<std::string> all_words();
};

/// Which notes a document holds.
enum class NoteStyle {
  kClassic,  ///< 5 templates, mixed at random, one instruction (the shipped indexer's data)
  kVaried,   ///< 14 templates and 3 instructions; half the documents repeat one template with
             ///< other names and numbers (a multi-key retrieval); no two notes asked alike
};

/// A document of about `num_tokens` tokens (the text is cut to fit exactly; the total may exceed
/// it only when the fixed parts alone do), with 1 to `max_notes` notes at random verse
/// boundaries; deterministic in `seed` and `style`. Throws DecodeError when num_tokens is too
/// small.
SyntheticDoc make_synthetic_doc(const lsa_decode::Tokenizer& tokenizer,
                                const lsa_decode::Haystack& text, int64_t num_tokens,
                                int32_t max_notes, uint64_t seed,
                                NoteStyle style = NoteStyle::kClassic);

}  // namespace lsa_indexer
