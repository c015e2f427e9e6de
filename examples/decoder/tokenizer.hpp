// Byte-level BPE tokenizer (GPT-2 family, as GGUF "gpt2" vocabularies store it) with the
// pre-tokenizer of SmolLM2 ("smollm"), special tokens, detokenizer and the ChatML template.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lsa_decode {

class GgufFile;

/// UTF-8 bytes of code point `cp` (< 0x110000).
std::string utf8_of(uint32_t cp);

/// A message for the chat template.
struct ChatMessage {
  std::string role;     ///< "system", "user" or "assistant"
  std::string content;
};

class Tokenizer {
 public:
  /// Reads tokenizer.ggml.{model, pre, tokens, token_type, merges, bos/eos/unknown/padding ids}
  /// from the file; throws DecodeError naming the key when one is missing or inconsistent (a
  /// model other than "gpt2", a merge naming an unknown token, ids out of range).
  explicit Tokenizer(const GgufFile& file);

  /// Token ids of `text`. Special tokens written in the text (e.g. "<|im_start|>") become their
  /// ids when `parse_special` is true; otherwise they are encoded as plain text. No BOS is added
  /// (this model's tokenizer.ggml.add_bos_token is false).
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;

  /// The text of one token (raw bytes, possibly a partial UTF-8 sequence); special tokens give
  /// their literal text. Throws DecodeError for an id out of range.
  std::string token_text(int32_t id) const;
  /// The text of a sequence of tokens.
  std::string decode(const std::vector<int32_t>& ids) const;

  /// The ChatML prompt of SmolLM2-Instruct: a default system message when the first message is
  /// not one ("You are a helpful AI assistant named SmolLM, trained by Hugging Face"), each message
  /// as "<|im_start|>{role}\n{content}<|im_end|>\n", then "<|im_start|>assistant\n" when
  /// `add_generation_prompt`.
  static std::string chat_prompt(const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt = true);

  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  /// True for control tokens (token_type 3) such as <|im_end|>.
  bool is_special(int32_t id) const;

 private:
  std::vector<std::string> tokens_;  // as stored: byte-level (GPT-2 byte-to-unicode) strings
  std::vector<int32_t> token_type_;
  std::unordered_map<std::string, int32_t> token_ids_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // "left right" -> rank
  std::vector<int32_t> special_ids_;                     // control tokens, longest text first
  int32_t bos_ = -1, eos_ = -1, unk_ = -1;
};

}  // namespace lsa_decode
