// The indexer's synthetic retrieval documents with the real tokenizer: length, notes in place, the
// question and answer where the document says, deterministic in the seed. Skipped without the
// model file (scripts/fetch_model.sh).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "gguf.hpp"
#include "haystack.hpp"
#include "synthetic_tasks.hpp"
#include "tokenizer.hpp"

namespace {

namespace ld = lsa_decode;
namespace li = lsa_indexer;

std::string decode_range(const ld::Tokenizer& tok, const std::vector<int32_t>& ids, int64_t from,
                         int64_t to) {
  return tok.decode(std::vector<int32_t>(ids.begin() + from, ids.begin() + to));
}

}  // namespace

TEST_CASE("synthetic documents: notes, question and answer in place, deterministic", "[indexer]") {
  const std::string model = std::string(LSA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(model)) {
    WARN("LSA_TEST_SKIPPED: model file " << model
                                         << " is missing (scripts/fetch_model.sh fetches it)");
    return;
  }
  const ld::GgufFile file = ld::GgufFile::open(model);
  const ld::Tokenizer tok(file);
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("lsa_synthetic_docs_" + std::to_string(getpid()) + ".txt");
  {
    std::ofstream text(path);
    for (int i = 0; i < 60; ++i) {
      text << "Verse " << i << ": and the river ran on past the hills, and the fields were sown.\n";
    }
  }
  const ld::Haystack hay(tok, path.string());
  std::filesystem::remove(path);

  for (const li::NoteStyle style : {li::NoteStyle::kClassic, li::NoteStyle::kVaried}) {
    for (uint64_t seed = 0; seed < 100; ++seed) {
      INFO("style " << static_cast<int>(style) << ", seed " << seed);
      const li::SyntheticDoc doc = li::make_synthetic_doc(tok, hay, 700, 4, seed, style);
      CHECK(doc.tokens.size() == 700);
      REQUIRE(doc.note_positions.size() >= 1);
      CHECK(doc.note_positions.size() <= 4);
      REQUIRE(doc.question_start < doc.answer_start);
      REQUIRE(doc.answer_start < static_cast<int64_t>(doc.tokens.size()));
      // The asked note (first) holds the answer; every note sits before the question.
      for (const int64_t p : doc.note_positions) CHECK(p < doc.question_start);
      const int64_t asked = doc.note_positions[0];
      CHECK(decode_range(tok, doc.tokens, asked, std::min(asked + 40, doc.question_start))
                .find(doc.answer) != std::string::npos);
      CHECK(
          decode_range(tok, doc.tokens, doc.question_start, doc.answer_start).find(doc.question) !=
          std::string::npos);
      CHECK(decode_range(tok, doc.tokens, doc.answer_start, static_cast<int64_t>(doc.tokens.size()))
                .rfind(" " + doc.answer + ".", 0) == 0);
      CHECK(li::make_synthetic_doc(tok, hay, 700, 4, seed, style).tokens == doc.tokens);
    }
  }
  // Many notes: in varied documents a template runs out of distinct questions and the notes mix
  // templates instead.
  for (uint64_t seed = 0; seed < 8; ++seed) {
    const li::SyntheticDoc doc =
        li::make_synthetic_doc(tok, hay, 3000, 40, seed, li::NoteStyle::kVaried);
    CHECK(doc.note_positions.size() <= 40);
    CHECK(doc.tokens.size() == 3000);
  }
  // The styles are different documents.
  CHECK(li::make_synthetic_doc(tok, hay, 700, 4, 5, li::NoteStyle::kClassic).tokens !=
        li::make_synthetic_doc(tok, hay, 700, 4, 5, li::NoteStyle::kVaried).tokens);
  CHECK_THROWS_WITH(li::make_synthetic_doc(tok, hay, 40, 4, 1),
                    Catch::Contains("too short for its notes and question"));
}
