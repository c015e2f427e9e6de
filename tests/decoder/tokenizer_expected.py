#!/usr/bin/env python3
"""Expected token ids for tests/decoder/tokenizer_test.cpp, from an independent tokenizer.

Builds a Hugging Face `tokenizers` BPE from the vocabulary and merges stored in the GGUF file,
with SmolLM2's pre-tokenizer (tokenizer.json of HuggingFaceTB/SmolLM2-135M-Instruct: a Sequence of
Digits(individual_digits=true) and ByteLevel(add_prefix_space=false, use_regex=true)), its
ByteLevel decoder, and the control tokens (token_type 3) as special added tokens; then prints the
C++ initializers of the test's kCases table (then run clang-format on the test file).

    pip install gguf tokenizers
    python3 tests/decoder/tokenizer_expected.py models/SmolLM2-135M-Instruct.Q4_1.gguf

`parse_special = false` cases are encoded with `encode_special_tokens = True`, which makes the
library treat special-token text as plain text.
"""
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

CASES = [
    ("plain English", "Hello, world!", True),
    ("sentence", "The quick brown fox jumps over the lazy dog.", True),
    ("digits split one by one", "12345 3.14", True),
    ("dates and versions", "Version 2.0.1 released on 2024-11-05 at 10:30pm.", True),
    ("contractions", "I'm sure you're right; we'll see, they've said it's done, I'd go.", True),
    ("contraction look-alikes", "'sup? 'S 'LL 'Re don't ''s", True),
    ("whitespace run between words", "Hello   world", True),
    ("leading and trailing spaces", "  leading and trailing  ", True),
    ("newlines", "line one\nline two\n\nline four\r\n", True),
    ("tabs", "\tindented\ttabs\t\t end", True),
    ("punctuation", "Punctuation!!! ??? ... --- (a) [b] {c} <d> @#$%^&*", True),
    ("code", "def f(x):\n    return x ** 2  # square\n", True),
    ("accented Latin", "naïve café déjà vu, Straße, Ærøskøbing", True),
    ("Greek", "Γειά σου Κόσμε! αβγδε", True),
    ("Cyrillic", "Привет, мир! Съешь же ещё этих мягких французских булок.", True),
    ("CJK and Hangul", "你好，世界！日本語のテキスト。한국어 텍스트", True),
    ("Arabic and Hebrew", "مرحبا بالعالم שלום עולם", True),
    ("Devanagari with combining signs", "नमस्ते दुनिया", True),
    ("emoji", "Emoji: 😀🎉👍🏽 ❤️ 🇫🇷", True),
    ("other numbers", "Numbers: ½ ² ٣ ३ Ⅻ ①", True),
    ("combining accent", "e\u0301 combining", True),
    ("Unicode spaces", "\u00a0non-breaking\u3000ideographic space\u2028end", True),
    ("ChatML with special tokens",
     "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n", True),
    ("ChatML as plain text",
     "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n", False),
    ("adjacent and partial specials", "<|endoftext|><|endoftext|>text<repo_name>x<|im_end", True),
    ("empty", "", True),
    ("single space", " ", True),
    ("single newline", "\n", True),
    ("bytes without a token are dropped", "control \x04 and \x1d bytes (\x06)", True),
    ("URL", "https://example.com/path?query=1&b=2#frag", True),
    ("email and phone", "user@example.com +1 (555) 123-4567", True),
    ("case", "ALL CAPS TEXT and MiXeD cAsE", True),
    ("long words", "Supercalifragilisticexpialidocious antidisestablishmentarianism", True),
    ("chat prompt with default system message",
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", True),
]


def load(path):
    reader = GGUFReader(path)

    def array(key):
        field = reader.fields[key]
        return [field.parts[i] for i in field.data]

    tokens = [bytes(p).decode("utf-8") for p in array("tokenizer.ggml.tokens")]
    types = [int(p[0]) for p in array("tokenizer.ggml.token_type")]
    merges = [tuple(bytes(p).decode("utf-8").split(" ")) for p in array("tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    return tok


def cpp_string(text):
    """A C++ string literal of the UTF-8 bytes of `text`, non-ASCII bytes as \\x escapes."""
    out, escaped = '"', False
    for b in text.encode("utf-8"):
        c = chr(b)
        if escaped and c in "0123456789abcdefABCDEF":
            out += '" "'  # end the literal so the next character is not read as a hex digit
        escaped = False
        if c == "\\" or c == '"':
            out += "\\" + c
        elif c == "\n":
            out += "\\n"
        elif c == "\t":
            out += "\\t"
        elif c == "\r":
            out += "\\r"
        elif 0x20 <= b < 0x7F:
            out += c
        else:
            out += "\\x%02x" % b
            escaped = True
    return out + '"'


def main():
    tok = load(sys.argv[1])
    for name, text, parse_special in CASES:
        tok.encode_special_tokens = not parse_special
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == text or "\x04" in text
        print("    {%s," % cpp_string(name))
        print("     %s," % cpp_string(text))
        print("     %s," % ("true" if parse_special else "false"))
        print("     {%s}}," % ", ".join(str(i) for i in ids))


if __name__ == "__main__":
    main()
