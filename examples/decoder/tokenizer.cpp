// Byte-level BPE as GGUF "gpt2" vocabularies store it, with SmolLM2's pre-tokenizer. Matches
// Hugging Face tokenizers on SmolLM2's tokenizer.json: added (control) tokens are cut out of the
// text first; the rest goes through Digits(individual_digits=true), then ByteLevel
// (add_prefix_space=false, use_regex=true: GPT-2's split pattern), then BPE by merge rank.
#include "tokenizer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <functional>
#include <string>
#include <utility>

#include "error.hpp"
#include "gguf.hpp"

namespace lsa_decode {
namespace {

// ---------------------------------------------------------------------------------------------
// GPT-2's byte <-> character mapping. Byte-level vocabularies spell every byte as a visible
// character so that tokens never hold spaces or control bytes: the printable bytes '!'..'~',
// U+00A1..U+00AC and U+00AE..U+00FF stand for themselves, the other 68 bytes (in increasing
// order) become U+0100, U+0101, ... U+0143.

struct ByteMap {
  std::array<std::string, 256> byte_to_text;  // UTF-8 of the character that spells each byte
  std::array<int16_t, 0x144> char_to_byte;    // the inverse over U+0000..U+0143; -1 where none
};

bool stands_for_itself(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

const ByteMap& byte_map() {
  static const ByteMap map = [] {
    ByteMap m;
    m.char_to_byte.fill(-1);
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const uint32_t cp = stands_for_itself(b) ? static_cast<uint32_t>(b) : next++;
      m.byte_to_text[b] = utf8_of(cp);
      m.char_to_byte[cp] = static_cast<int16_t>(b);
    }
    return m;
  }();
  return map;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 decoding. Bytes that do not start a well-formed sequence (stray continuation bytes,
// overlong forms, surrogates, values past U+10FFFF, truncated sequences) are taken one at a time
// as characters of their own, classified "other"; byte-level BPE still encodes them exactly.

constexpr uint32_t kInvalid = 0xFFFFFFFF;

struct Decoded {
  uint32_t cp;  // kInvalid for a byte that is not part of a well-formed sequence
  int len;      // bytes consumed, >= 1
};

Decoded decode_utf8(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) return {b0, 1};
  int len = 0;
  uint32_t cp = 0, min = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return {kInvalid, 1};
  }
  if (i + len > s.size()) return {kInvalid, 1};
  for (int k = 1; k < len; ++k) {
    const uint8_t b = byte(i + k);
    if ((b & 0xC0) != 0x80) return {kInvalid, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {kInvalid, 1};
  return {cp, len};
}

// ---------------------------------------------------------------------------------------------
// Character classes of the split pattern: \p{L}, \p{N}, \s (as Oniguruma, the regex engine of
// Hugging Face tokenizers, defines it for Unicode: U+0009..U+000D, U+0085 and the categories
// Zs, Zl, Zp), and everything else.

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

struct CodeRange {
  uint32_t first, last;
  CharClass cls;
};

constexpr CharClass kL = CharClass::kLetter;
constexpr CharClass kN = CharClass::kNumber;

// Every code point >= U+0080 of general category L* (kL) or N* (kN), as ranges, generated from
// the Unicode 16.0 character database (pip install unicodedata2==16.0.0), the version Hugging Face
// tokenizers 0.23 classifies by: encoding every assigned code point with both gives the same ids.
//
//   runs = []  # [first, last, class] of the assigned code points >= U+0080
//   for c in range(0x80, 0x110000):
//       cat = unicodedata2.category(chr(c))
//       if cat == 'Cn': continue  # unassigned
//       k = cat[0] if cat[0] in 'LN' else 'O'
//       if runs and runs[-1][2] == k: runs[-1][1] = c
//       else: runs.append([c, c, k])
//   print([r for r in runs if r[2] != 'O'])
//
// The only approximation: a code point unassigned in Unicode 16 that lies between two letters
// (numbers) with no other assigned code point in between counts as a letter (number); Oniguruma
// counts it as neither. Text rarely holds one, and a later Unicode may assign it anyway.
constexpr CodeRange kLetterNumberRanges[] = {
    {0xAA, 0xAA, kL},       {0xB2, 0xB3, kN},       {0xB5, 0xB5, kL},       {0xB9, 0xB9, kN},
    {0xBA, 0xBA, kL},       {0xBC, 0xBE, kN},       {0xC0, 0xD6, kL},       {0xD8, 0xF6, kL},
    {0xF8, 0x2C1, kL},      {0x2C6, 0x2D1, kL},     {0x2E0, 0x2E4, kL},     {0x2EC, 0x2EC, kL},
    {0x2EE, 0x2EE, kL},     {0x370, 0x374, kL},     {0x376, 0x37D, kL},     {0x37F, 0x37F, kL},
    {0x386, 0x386, kL},     {0x388, 0x3F5, kL},     {0x3F7, 0x481, kL},     {0x48A, 0x559, kL},
    {0x560, 0x588, kL},     {0x5D0, 0x5F2, kL},     {0x620, 0x64A, kL},     {0x660, 0x669, kN},
    {0x66E, 0x66F, kL},     {0x671, 0x6D3, kL},     {0x6D5, 0x6D5, kL},     {0x6E5, 0x6E6, kL},
    {0x6EE, 0x6EF, kL},     {0x6F0, 0x6F9, kN},     {0x6FA, 0x6FC, kL},     {0x6FF, 0x6FF, kL},
    {0x710, 0x710, kL},     {0x712, 0x72F, kL},     {0x74D, 0x7A5, kL},     {0x7B1, 0x7B1, kL},
    {0x7C0, 0x7C9, kN},     {0x7CA, 0x7EA, kL},     {0x7F4, 0x7F5, kL},     {0x7FA, 0x7FA, kL},
    {0x800, 0x815, kL},     {0x81A, 0x81A, kL},     {0x824, 0x824, kL},     {0x828, 0x828, kL},
    {0x840, 0x858, kL},     {0x860, 0x887, kL},     {0x889, 0x88E, kL},     {0x8A0, 0x8C9, kL},
    {0x904, 0x939, kL},     {0x93D, 0x93D, kL},     {0x950, 0x950, kL},     {0x958, 0x961, kL},
    {0x966, 0x96F, kN},     {0x971, 0x980, kL},     {0x985, 0x9B9, kL},     {0x9BD, 0x9BD, kL},
    {0x9CE, 0x9CE, kL},     {0x9DC, 0x9E1, kL},     {0x9E6, 0x9EF, kN},     {0x9F0, 0x9F1, kL},
    {0x9F4, 0x9F9, kN},     {0x9FC, 0x9FC, kL},     {0xA05, 0xA39, kL},     {0xA59, 0xA5E, kL},
    {0xA66, 0xA6F, kN},     {0xA72, 0xA74, kL},     {0xA85, 0xAB9, kL},     {0xABD, 0xABD, kL},
    {0xAD0, 0xAE1, kL},     {0xAE6, 0xAEF, kN},     {0xAF9, 0xAF9, kL},     {0xB05, 0xB39, kL},
    {0xB3D, 0xB3D, kL},     {0xB5C, 0xB61, kL},     {0xB66, 0xB6F, kN},     {0xB71, 0xB71, kL},
    {0xB72, 0xB77, kN},     {0xB83, 0xBB9, kL},     {0xBD0, 0xBD0, kL},     {0xBE6, 0xBF2, kN},
    {0xC05, 0xC39, kL},     {0xC3D, 0xC3D, kL},     {0xC58, 0xC61, kL},     {0xC66, 0xC6F, kN},
    {0xC78, 0xC7E, kN},     {0xC80, 0xC80, kL},     {0xC85, 0xCB9, kL},     {0xCBD, 0xCBD, kL},
    {0xCDD, 0xCE1, kL},     {0xCE6, 0xCEF, kN},     {0xCF1, 0xCF2, kL},     {0xD04, 0xD3A, kL},
    {0xD3D, 0xD3D, kL},     {0xD4E, 0xD4E, kL},     {0xD54, 0xD56, kL},     {0xD58, 0xD5E, kN},
    {0xD5F, 0xD61, kL},     {0xD66, 0xD78, kN},     {0xD7A, 0xD7F, kL},     {0xD85, 0xDC6, kL},
    {0xDE6, 0xDEF, kN},     {0xE01, 0xE30, kL},     {0xE32, 0xE33, kL},     {0xE40, 0xE46, kL},
    {0xE50, 0xE59, kN},     {0xE81, 0xEB0, kL},     {0xEB2, 0xEB3, kL},     {0xEBD, 0xEC6, kL},
    {0xED0, 0xED9, kN},     {0xEDC, 0xF00, kL},     {0xF20, 0xF33, kN},     {0xF40, 0xF6C, kL},
    {0xF88, 0xF8C, kL},     {0x1000, 0x102A, kL},   {0x103F, 0x103F, kL},   {0x1040, 0x1049, kN},
    {0x1050, 0x1055, kL},   {0x105A, 0x105D, kL},   {0x1061, 0x1061, kL},   {0x1065, 0x1066, kL},
    {0x106E, 0x1070, kL},   {0x1075, 0x1081, kL},   {0x108E, 0x108E, kL},   {0x1090, 0x1099, kN},
    {0x10A0, 0x10FA, kL},   {0x10FC, 0x135A, kL},   {0x1369, 0x137C, kN},   {0x1380, 0x138F, kL},
    {0x13A0, 0x13FD, kL},   {0x1401, 0x166C, kL},   {0x166F, 0x167F, kL},   {0x1681, 0x169A, kL},
    {0x16A0, 0x16EA, kL},   {0x16EE, 0x16F0, kN},   {0x16F1, 0x1711, kL},   {0x171F, 0x1731, kL},
    {0x1740, 0x1751, kL},   {0x1760, 0x1770, kL},   {0x1780, 0x17B3, kL},   {0x17D7, 0x17D7, kL},
    {0x17DC, 0x17DC, kL},   {0x17E0, 0x17F9, kN},   {0x1810, 0x1819, kN},   {0x1820, 0x1884, kL},
    {0x1887, 0x18A8, kL},   {0x18AA, 0x191E, kL},   {0x1946, 0x194F, kN},   {0x1950, 0x19C9, kL},
    {0x19D0, 0x19DA, kN},   {0x1A00, 0x1A16, kL},   {0x1A20, 0x1A54, kL},   {0x1A80, 0x1A99, kN},
    {0x1AA7, 0x1AA7, kL},   {0x1B05, 0x1B33, kL},   {0x1B45, 0x1B4C, kL},   {0x1B50, 0x1B59, kN},
    {0x1B83, 0x1BA0, kL},   {0x1BAE, 0x1BAF, kL},   {0x1BB0, 0x1BB9, kN},   {0x1BBA, 0x1BE5, kL},
    {0x1C00, 0x1C23, kL},   {0x1C40, 0x1C49, kN},   {0x1C4D, 0x1C4F, kL},   {0x1C50, 0x1C59, kN},
    {0x1C5A, 0x1C7D, kL},   {0x1C80, 0x1CBF, kL},   {0x1CE9, 0x1CEC, kL},   {0x1CEE, 0x1CF3, kL},
    {0x1CF5, 0x1CF6, kL},   {0x1CFA, 0x1DBF, kL},   {0x1E00, 0x1FBC, kL},   {0x1FBE, 0x1FBE, kL},
    {0x1FC2, 0x1FCC, kL},   {0x1FD0, 0x1FDB, kL},   {0x1FE0, 0x1FEC, kL},   {0x1FF2, 0x1FFC, kL},
    {0x2070, 0x2070, kN},   {0x2071, 0x2071, kL},   {0x2074, 0x2079, kN},   {0x207F, 0x207F, kL},
    {0x2080, 0x2089, kN},   {0x2090, 0x209C, kL},   {0x2102, 0x2102, kL},   {0x2107, 0x2107, kL},
    {0x210A, 0x2113, kL},   {0x2115, 0x2115, kL},   {0x2119, 0x211D, kL},   {0x2124, 0x2124, kL},
    {0x2126, 0x2126, kL},   {0x2128, 0x2128, kL},   {0x212A, 0x212D, kL},   {0x212F, 0x2139, kL},
    {0x213C, 0x213F, kL},   {0x2145, 0x2149, kL},   {0x214E, 0x214E, kL},   {0x2150, 0x2182, kN},
    {0x2183, 0x2184, kL},   {0x2185, 0x2189, kN},   {0x2460, 0x249B, kN},   {0x24EA, 0x24FF, kN},
    {0x2776, 0x2793, kN},   {0x2C00, 0x2CE4, kL},   {0x2CEB, 0x2CEE, kL},   {0x2CF2, 0x2CF3, kL},
    {0x2CFD, 0x2CFD, kN},   {0x2D00, 0x2D6F, kL},   {0x2D80, 0x2DDE, kL},   {0x2E2F, 0x2E2F, kL},
    {0x3005, 0x3006, kL},   {0x3007, 0x3007, kN},   {0x3021, 0x3029, kN},   {0x3031, 0x3035, kL},
    {0x3038, 0x303A, kN},   {0x303B, 0x303C, kL},   {0x3041, 0x3096, kL},   {0x309D, 0x309F, kL},
    {0x30A1, 0x30FA, kL},   {0x30FC, 0x318E, kL},   {0x3192, 0x3195, kN},   {0x31A0, 0x31BF, kL},
    {0x31F0, 0x31FF, kL},   {0x3220, 0x3229, kN},   {0x3248, 0x324F, kN},   {0x3251, 0x325F, kN},
    {0x3280, 0x3289, kN},   {0x32B1, 0x32BF, kN},   {0x3400, 0x4DBF, kL},   {0x4E00, 0xA48C, kL},
    {0xA4D0, 0xA4FD, kL},   {0xA500, 0xA60C, kL},   {0xA610, 0xA61F, kL},   {0xA620, 0xA629, kN},
    {0xA62A, 0xA66E, kL},   {0xA67F, 0xA69D, kL},   {0xA6A0, 0xA6E5, kL},   {0xA6E6, 0xA6EF, kN},
    {0xA717, 0xA71F, kL},   {0xA722, 0xA788, kL},   {0xA78B, 0xA801, kL},   {0xA803, 0xA805, kL},
    {0xA807, 0xA80A, kL},   {0xA80C, 0xA822, kL},   {0xA830, 0xA835, kN},   {0xA840, 0xA873, kL},
    {0xA882, 0xA8B3, kL},   {0xA8D0, 0xA8D9, kN},   {0xA8F2, 0xA8F7, kL},   {0xA8FB, 0xA8FB, kL},
    {0xA8FD, 0xA8FE, kL},   {0xA900, 0xA909, kN},   {0xA90A, 0xA925, kL},   {0xA930, 0xA946, kL},
    {0xA960, 0xA97C, kL},   {0xA984, 0xA9B2, kL},   {0xA9CF, 0xA9CF, kL},   {0xA9D0, 0xA9D9, kN},
    {0xA9E0, 0xA9E4, kL},   {0xA9E6, 0xA9EF, kL},   {0xA9F0, 0xA9F9, kN},   {0xA9FA, 0xAA28, kL},
    {0xAA40, 0xAA42, kL},   {0xAA44, 0xAA4B, kL},   {0xAA50, 0xAA59, kN},   {0xAA60, 0xAA76, kL},
    {0xAA7A, 0xAA7A, kL},   {0xAA7E, 0xAAAF, kL},   {0xAAB1, 0xAAB1, kL},   {0xAAB5, 0xAAB6, kL},
    {0xAAB9, 0xAABD, kL},   {0xAAC0, 0xAAC0, kL},   {0xAAC2, 0xAADD, kL},   {0xAAE0, 0xAAEA, kL},
    {0xAAF2, 0xAAF4, kL},   {0xAB01, 0xAB5A, kL},   {0xAB5C, 0xAB69, kL},   {0xAB70, 0xABE2, kL},
    {0xABF0, 0xABF9, kN},   {0xAC00, 0xD7FB, kL},   {0xF900, 0xFB1D, kL},   {0xFB1F, 0xFB28, kL},
    {0xFB2A, 0xFBB1, kL},   {0xFBD3, 0xFD3D, kL},   {0xFD50, 0xFDC7, kL},   {0xFDF0, 0xFDFB, kL},
    {0xFE70, 0xFEFC, kL},   {0xFF10, 0xFF19, kN},   {0xFF21, 0xFF3A, kL},   {0xFF41, 0xFF5A, kL},
    {0xFF66, 0xFFDC, kL},   {0x10000, 0x100FA, kL}, {0x10107, 0x10133, kN}, {0x10140, 0x10178, kN},
    {0x1018A, 0x1018B, kN}, {0x10280, 0x102D0, kL}, {0x102E1, 0x102FB, kN}, {0x10300, 0x1031F, kL},
    {0x10320, 0x10323, kN}, {0x1032D, 0x10340, kL}, {0x10341, 0x10341, kN}, {0x10342, 0x10349, kL},
    {0x1034A, 0x1034A, kN}, {0x10350, 0x10375, kL}, {0x10380, 0x1039D, kL}, {0x103A0, 0x103CF, kL},
    {0x103D1, 0x103D5, kN}, {0x10400, 0x1049D, kL}, {0x104A0, 0x104A9, kN}, {0x104B0, 0x10563, kL},
    {0x10570, 0x10855, kL}, {0x10858, 0x1085F, kN}, {0x10860, 0x10876, kL}, {0x10879, 0x1087F, kN},
    {0x10880, 0x1089E, kL}, {0x108A7, 0x108AF, kN}, {0x108E0, 0x108F5, kL}, {0x108FB, 0x108FF, kN},
    {0x10900, 0x10915, kL}, {0x10916, 0x1091B, kN}, {0x10920, 0x10939, kL}, {0x10980, 0x109B7, kL},
    {0x109BC, 0x109BD, kN}, {0x109BE, 0x109BF, kL}, {0x109C0, 0x109FF, kN}, {0x10A00, 0x10A00, kL},
    {0x10A10, 0x10A35, kL}, {0x10A40, 0x10A48, kN}, {0x10A60, 0x10A7C, kL}, {0x10A7D, 0x10A7E, kN},
    {0x10A80, 0x10A9C, kL}, {0x10A9D, 0x10A9F, kN}, {0x10AC0, 0x10AC7, kL}, {0x10AC9, 0x10AE4, kL},
    {0x10AEB, 0x10AEF, kN}, {0x10B00, 0x10B35, kL}, {0x10B40, 0x10B55, kL}, {0x10B58, 0x10B5F, kN},
    {0x10B60, 0x10B72, kL}, {0x10B78, 0x10B7F, kN}, {0x10B80, 0x10B91, kL}, {0x10BA9, 0x10BAF, kN},
    {0x10C00, 0x10CF2, kL}, {0x10CFA, 0x10CFF, kN}, {0x10D00, 0x10D23, kL}, {0x10D30, 0x10D49, kN},
    {0x10D4A, 0x10D65, kL}, {0x10D6F, 0x10D85, kL}, {0x10E60, 0x10E7E, kN}, {0x10E80, 0x10EA9, kL},
    {0x10EB0, 0x10EC4, kL}, {0x10F00, 0x10F1C, kL}, {0x10F1D, 0x10F26, kN}, {0x10F27, 0x10F45, kL},
    {0x10F51, 0x10F54, kN}, {0x10F70, 0x10F81, kL}, {0x10FB0, 0x10FC4, kL}, {0x10FC5, 0x10FCB, kN},
    {0x10FE0, 0x10FF6, kL}, {0x11003, 0x11037, kL}, {0x11052, 0x1106F, kN}, {0x11071, 0x11072, kL},
    {0x11075, 0x11075, kL}, {0x11083, 0x110AF, kL}, {0x110D0, 0x110E8, kL}, {0x110F0, 0x110F9, kN},
    {0x11103, 0x11126, kL}, {0x11136, 0x1113F, kN}, {0x11144, 0x11144, kL}, {0x11147, 0x11172, kL},
    {0x11176, 0x11176, kL}, {0x11183, 0x111B2, kL}, {0x111C1, 0x111C4, kL}, {0x111D0, 0x111D9, kN},
    {0x111DA, 0x111DA, kL}, {0x111DC, 0x111DC, kL}, {0x111E1, 0x111F4, kN}, {0x11200, 0x1122B, kL},
    {0x1123F, 0x11240, kL}, {0x11280, 0x112A8, kL}, {0x112B0, 0x112DE, kL}, {0x112F0, 0x112F9, kN},
    {0x11305, 0x11339, kL}, {0x1133D, 0x1133D, kL}, {0x11350, 0x11350, kL}, {0x1135D, 0x11361, kL},
    {0x11380, 0x113B7, kL}, {0x113D1, 0x113D1, kL}, {0x113D3, 0x113D3, kL}, {0x11400, 0x11434, kL},
    {0x11447, 0x1144A, kL}, {0x11450, 0x11459, kN}, {0x1145F, 0x114AF, kL}, {0x114C4, 0x114C5, kL},
    {0x114C7, 0x114C7, kL}, {0x114D0, 0x114D9, kN}, {0x11580, 0x115AE, kL}, {0x115D8, 0x115DB, kL},
    {0x11600, 0x1162F, kL}, {0x11644, 0x11644, kL}, {0x11650, 0x11659, kN}, {0x11680, 0x116AA, kL},
    {0x116B8, 0x116B8, kL}, {0x116C0, 0x116E3, kN}, {0x11700, 0x1171A, kL}, {0x11730, 0x1173B, kN},
    {0x11740, 0x1182B, kL}, {0x118A0, 0x118DF, kL}, {0x118E0, 0x118F2, kN}, {0x118FF, 0x1192F, kL},
    {0x1193F, 0x1193F, kL}, {0x11941, 0x11941, kL}, {0x11950, 0x11959, kN}, {0x119A0, 0x119D0, kL},
    {0x119E1, 0x119E1, kL}, {0x119E3, 0x119E3, kL}, {0x11A00, 0x11A00, kL}, {0x11A0B, 0x11A32, kL},
    {0x11A3A, 0x11A3A, kL}, {0x11A50, 0x11A50, kL}, {0x11A5C, 0x11A89, kL}, {0x11A9D, 0x11A9D, kL},
    {0x11AB0, 0x11AF8, kL}, {0x11BC0, 0x11BE0, kL}, {0x11BF0, 0x11BF9, kN}, {0x11C00, 0x11C2E, kL},
    {0x11C40, 0x11C40, kL}, {0x11C50, 0x11C6C, kN}, {0x11C72, 0x11C8F, kL}, {0x11D00, 0x11D30, kL},
    {0x11D46, 0x11D46, kL}, {0x11D50, 0x11D59, kN}, {0x11D60, 0x11D89, kL}, {0x11D98, 0x11D98, kL},
    {0x11DA0, 0x11DA9, kN}, {0x11EE0, 0x11EF2, kL}, {0x11F02, 0x11F02, kL}, {0x11F04, 0x11F33, kL},
    {0x11F50, 0x11F59, kN}, {0x11FB0, 0x11FB0, kL}, {0x11FC0, 0x11FD4, kN}, {0x12000, 0x12399, kL},
    {0x12400, 0x1246E, kN}, {0x12480, 0x12FF0, kL}, {0x13000, 0x1342F, kL}, {0x13441, 0x13446, kL},
    {0x13460, 0x1611D, kL}, {0x16130, 0x16139, kN}, {0x16800, 0x16A5E, kL}, {0x16A60, 0x16A69, kN},
    {0x16A70, 0x16ABE, kL}, {0x16AC0, 0x16AC9, kN}, {0x16AD0, 0x16AED, kL}, {0x16B00, 0x16B2F, kL},
    {0x16B40, 0x16B43, kL}, {0x16B50, 0x16B61, kN}, {0x16B63, 0x16D6C, kL}, {0x16D70, 0x16D79, kN},
    {0x16E40, 0x16E7F, kL}, {0x16E80, 0x16E96, kN}, {0x16F00, 0x16F4A, kL}, {0x16F50, 0x16F50, kL},
    {0x16F93, 0x16FE1, kL}, {0x16FE3, 0x16FE3, kL}, {0x17000, 0x1BC99, kL}, {0x1CCF0, 0x1CCF9, kN},
    {0x1D2C0, 0x1D2F3, kN}, {0x1D360, 0x1D378, kN}, {0x1D400, 0x1D6C0, kL}, {0x1D6C2, 0x1D6DA, kL},
    {0x1D6DC, 0x1D6FA, kL}, {0x1D6FC, 0x1D714, kL}, {0x1D716, 0x1D734, kL}, {0x1D736, 0x1D74E, kL},
    {0x1D750, 0x1D76E, kL}, {0x1D770, 0x1D788, kL}, {0x1D78A, 0x1D7A8, kL}, {0x1D7AA, 0x1D7C2, kL},
    {0x1D7C4, 0x1D7CB, kL}, {0x1D7CE, 0x1D7FF, kN}, {0x1DF00, 0x1DF2A, kL}, {0x1E030, 0x1E06D, kL},
    {0x1E100, 0x1E12C, kL}, {0x1E137, 0x1E13D, kL}, {0x1E140, 0x1E149, kN}, {0x1E14E, 0x1E14E, kL},
    {0x1E290, 0x1E2AD, kL}, {0x1E2C0, 0x1E2EB, kL}, {0x1E2F0, 0x1E2F9, kN}, {0x1E4D0, 0x1E4EB, kL},
    {0x1E4F0, 0x1E4F9, kN}, {0x1E5D0, 0x1E5ED, kL}, {0x1E5F0, 0x1E5F0, kL}, {0x1E5F1, 0x1E5FA, kN},
    {0x1E7E0, 0x1E8C4, kL}, {0x1E8C7, 0x1E8CF, kN}, {0x1E900, 0x1E943, kL}, {0x1E94B, 0x1E94B, kL},
    {0x1E950, 0x1E959, kN}, {0x1EC71, 0x1ECAB, kN}, {0x1ECAD, 0x1ECAF, kN}, {0x1ECB1, 0x1ED2D, kN},
    {0x1ED2F, 0x1ED3D, kN}, {0x1EE00, 0x1EEBB, kL}, {0x1F100, 0x1F10C, kN}, {0x1FBF0, 0x1FBF9, kN},
    {0x20000, 0x323AF, kL},
};

bool is_unicode_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

CharClass classify(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    return is_unicode_space(cp) ? CharClass::kSpace : CharClass::kOther;
  }
  if (cp == kInvalid) return CharClass::kOther;
  if (is_unicode_space(cp)) return CharClass::kSpace;
  const auto* end = std::end(kLetterNumberRanges);
  const auto* it = std::upper_bound(std::begin(kLetterNumberRanges), end, cp,
                                    [](uint32_t c, const CodeRange& r) { return c < r.first; });
  if (it == std::begin(kLetterNumberRanges)) return CharClass::kOther;
  --it;
  return cp <= it->last ? it->cls : CharClass::kOther;
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenization: Digits(individual_digits=true) makes every \p{N} character a piece of its
// own; each stretch between them is then split by GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// evaluated by hand: alternatives are tried in order at each position, as a backtracking engine
// does, and the lookahead only sees the stretch (Hugging Face splits each piece on its own).

struct Unit {
  size_t offset;  // of the character's first byte in the text
  uint32_t cp;    // kInvalid for a byte outside well-formed UTF-8
  CharClass cls;
};

class PreTokenizer {
 public:
  // Calls emit(piece) for each pre-token of `text`, in order; the pieces tile the text.
  template <class Emit>
  void split(std::string_view text, Emit&& emit) {
    units_.clear();
    for (size_t i = 0; i < text.size();) {
      const Decoded d = decode_utf8(text, i);
      units_.push_back({i, d.cp, classify(d.cp)});
      i += d.len;
    }
    text_ = text;
    size_t begin = 0;
    for (size_t i = 0; i <= units_.size(); ++i) {
      if (i < units_.size() && units_[i].cls != CharClass::kNumber) continue;
      split_stretch(begin, i, emit);
      if (i < units_.size()) emit(piece(i, i + 1));
      begin = i + 1;
    }
  }

 private:
  std::string_view piece(size_t a, size_t b) const {
    const size_t end = b < units_.size() ? units_[b].offset : text_.size();
    return text_.substr(units_[a].offset, end - units_[a].offset);
  }

  // The end of the run of `cls` characters that starts at i, within [i, end).
  size_t run(size_t i, size_t end, CharClass cls) const {
    while (i < end && units_[i].cls == cls) ++i;
    return i;
  }

  // The length of a contraction ('s 't 're 've 'm 'll 'd, lower case only) at i, or 0.
  size_t contraction(size_t i, size_t end) const {
    if (units_[i].cp != '\'' || i + 1 >= end) return 0;
    const uint32_t c1 = units_[i + 1].cp;
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    const uint32_t c2 = i + 2 < end ? units_[i + 2].cp : 0;
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
  }

  template <class Emit>
  void split_stretch(size_t begin, size_t end, Emit& emit) const {
    for (size_t i = begin; i < end;) {
      size_t j = i + contraction(i, end);
      if (j == i) {
        // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': one U+0020 may lead a run of one class.
        const bool lead =
            units_[i].cp == ' ' && i + 1 < end && units_[i + 1].cls != CharClass::kSpace;
        const size_t k = lead ? i + 1 : i;
        if (units_[k].cls != CharClass::kSpace) {
          j = run(k, end, units_[k].cls);
        } else {
          // '\s+(?!\S)' gives back the last space before a non-space so that it can lead the
          // next word; a single space before a non-space is taken by '\s+'.
          j = run(i, end, CharClass::kSpace);
          if (j < end && j - i > 1) --j;
        }
      }
      emit(piece(i, j));
      i = j;
    }
  }

  std::string_view text_;
  std::vector<Unit> units_;
};

// ---------------------------------------------------------------------------------------------
// BPE over one pre-token. Its bytes are spelled through the byte map (bytes the vocabulary has no
// token for are dropped, as Hugging Face's BPE does without an unk_token), each character starts
// as a symbol, and the adjacent pair of lowest merge rank (the leftmost among equals) is merged
// until no pair has a rank. Symbols form a linked list; a heap holds the candidate pairs, and a
// candidate whose symbols have changed since it was pushed is skipped.

class Bpe {
 public:
  Bpe(const std::unordered_map<std::string, int32_t>& token_ids,
      const std::unordered_map<std::string, int32_t>& merge_rank)
      : token_ids_(token_ids), merge_rank_(merge_rank) {
    const ByteMap& map = byte_map();
    for (int b = 0; b < 256; ++b) known_byte_[b] = token_ids_.count(map.byte_to_text[b]) != 0;
  }

  void encode(std::string_view piece, std::vector<int32_t>& out) {
    const ByteMap& map = byte_map();
    spelled_.clear();
    symbols_.clear();
    for (const char c : piece) {
      const auto b = static_cast<uint8_t>(c);
      if (!known_byte_[b]) continue;
      const std::string& text = map.byte_to_text[b];
      const auto n = static_cast<int32_t>(symbols_.size());
      symbols_.push_back(
          {static_cast<int32_t>(spelled_.size()), static_cast<int32_t>(text.size()), n - 1, n + 1});
      spelled_ += text;
    }
    if (symbols_.empty()) return;
    symbols_.back().next = -1;

    heap_.clear();
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols_.size()); ++i) push_pair(i);
    while (!heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
      const Candidate c = heap_.back();
      heap_.pop_back();
      Symbol& left = symbols_[c.left];
      if (left.len != c.left_len || left.next < 0 || symbols_[left.next].len != c.right_len) {
        continue;  // stale: one of the two symbols has been merged since
      }
      Symbol& right = symbols_[left.next];
      left.len += right.len;
      left.next = right.next;
      if (right.next >= 0) symbols_[right.next].prev = c.left;
      right.len = 0;
      if (left.prev >= 0) push_pair(left.prev);
      push_pair(c.left);
    }

    for (int32_t i = 0; i >= 0; i = symbols_[i].next) {
      key_.assign(spelled_, symbols_[i].start, symbols_[i].len);
      const auto it = token_ids_.find(key_);
      if (it != token_ids_.end()) out.push_back(it->second);  // always found: merges are checked
    }
  }

 private:
  struct Symbol {
    int32_t start, len;  // bytes of spelled_; len 0 once merged into the symbol on its left
    int32_t prev, next;  // neighbours, -1 at the ends
  };
  struct Candidate {
    int32_t rank, left;           // ordered by rank, then position
    int32_t left_len, right_len;  // the pair as it was when pushed
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };

  void push_pair(int32_t i) {
    const Symbol& l = symbols_[i];
    if (l.next < 0) return;
    const Symbol& r = symbols_[l.next];
    key_.assign(spelled_, l.start, l.len);
    key_ += ' ';
    key_.append(spelled_, r.start, r.len);
    const auto it = merge_rank_.find(key_);
    if (it == merge_rank_.end()) return;
    heap_.push_back({it->second, i, l.len, r.len});
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  }

  const std::unordered_map<std::string, int32_t>& token_ids_;
  const std::unordered_map<std::string, int32_t>& merge_rank_;
  std::array<bool, 256> known_byte_{};
  std::string spelled_;  // the pre-token in the vocabulary's spelling
  std::vector<Symbol> symbols_;
  std::vector<Candidate> heap_;
  std::string key_;  // lookup buffer, reused to avoid an allocation per lookup
};

constexpr int64_t kTokenTypeControl = 3;
constexpr int64_t kTokenTypeUserDefined = 4;
constexpr int64_t kMaxTokenType = 6;  // llama.cpp's numbering: 0 undefined .. 6 byte

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw DecodeError(fmt::format(format, std::forward<Args>(args)...));
}

// A token id stored under `key`, checked against the vocabulary; -1 when absent and optional.
int32_t read_token_id(const GgufFile& file, std::string_view key, size_t num_tokens,
                      bool required) {
  if (!required && !file.has(key)) return -1;
  const int64_t id = file.get_int(key);
  if (id < 0 || id >= static_cast<int64_t>(num_tokens)) {
    fail("{} is {}, outside the vocabulary of {} tokens", key, id, num_tokens);
  }
  return static_cast<int32_t>(id);
}

}  // namespace

std::string utf8_of(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

Tokenizer::Tokenizer(const GgufFile& file) {
  const std::string model = file.get_string("tokenizer.ggml.model");
  if (model != "gpt2") {
    fail("tokenizer.ggml.model is '{}'; lsa-decode reads only byte-level BPE ('gpt2') vocabularies",
         model);
  }
  const std::string pre = file.get_string("tokenizer.ggml.pre");
  if (pre != "smollm") {
    fail("tokenizer.ggml.pre is '{}'; lsa-decode implements only the 'smollm' pre-tokenizer", pre);
  }

  tokens_ = file.get_string_array("tokenizer.ggml.tokens");
  if (tokens_.empty()) fail("tokenizer.ggml.tokens is empty");
  if (tokens_.size() > static_cast<size_t>(INT32_MAX)) {
    fail("tokenizer.ggml.tokens has {} tokens, more than int32 ids can name", tokens_.size());
  }
  const std::vector<int64_t> types = file.get_int_array("tokenizer.ggml.token_type");
  if (types.size() != tokens_.size()) {
    fail("tokenizer.ggml.token_type has {} entries for {} tokens", types.size(), tokens_.size());
  }
  token_type_.reserve(types.size());
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] < 0 || types[i] > kMaxTokenType) {
      fail("tokenizer.ggml.token_type[{}] is {}; token types are 0..{}", i, types[i],
           kMaxTokenType);
    }
    token_type_.push_back(static_cast<int32_t>(types[i]));
  }
  // A text stored twice keeps its first id, as lookups by text can only give one.
  token_ids_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    token_ids_.emplace(tokens_[i], static_cast<int32_t>(i));
  }

  const std::vector<std::string> merges = file.get_string_array("tokenizer.ggml.merges");
  merge_rank_.reserve(merges.size());
  std::string merged;
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i];
    const size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size() ||
        m.find(' ', space + 1) != std::string::npos) {
      fail("tokenizer.ggml.merges[{}] is '{}', not two tokens separated by one space", i, m);
    }
    merged.assign(m, 0, space);
    merged.append(m, space + 1);
    for (const std::string& part : {m.substr(0, space), m.substr(space + 1), merged}) {
      if (token_ids_.count(part) == 0) {
        fail("tokenizer.ggml.merges[{}] '{}' names '{}', which is not in tokenizer.ggml.tokens", i,
             m, part);
      }
    }
    merge_rank_.emplace(m, static_cast<int32_t>(i));  // a repeated merge keeps its first rank
  }

  bos_ = read_token_id(file, "tokenizer.ggml.bos_token_id", tokens_.size(), false);
  eos_ = read_token_id(file, "tokenizer.ggml.eos_token_id", tokens_.size(), true);
  unk_ = read_token_id(file, "tokenizer.ggml.unknown_token_id", tokens_.size(), false);
  read_token_id(file, "tokenizer.ggml.padding_token_id", tokens_.size(), false);

  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (token_type_[i] == kTokenTypeControl && !tokens_[i].empty()) {
      special_ids_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(special_ids_.begin(), special_ids_.end(),
                   [&](int32_t a, int32_t b) { return tokens_[a].size() > tokens_[b].size(); });
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> ids;
  PreTokenizer pre;
  Bpe bpe(token_ids_, merge_rank_);
  const auto encode_plain = [&](std::string_view plain) {
    pre.split(plain, [&](std::string_view piece) { bpe.encode(piece, ids); });
  };
  if (!parse_special || special_ids_.empty()) {
    encode_plain(text);
    return ids;
  }

  // Control tokens are cut out first, leftmost first and the longest where several match (what
  // Hugging Face does with added tokens); the text between them is encoded as plain text.
  std::array<bool, 256> may_start{};
  for (const int32_t id : special_ids_) may_start[static_cast<uint8_t>(tokens_[id][0])] = true;
  size_t plain_begin = 0;
  for (size_t pos = 0; pos < text.size();) {
    int32_t found = -1;
    if (may_start[static_cast<uint8_t>(text[pos])]) {
      for (const int32_t id : special_ids_) {
        if (text.substr(pos).starts_with(tokens_[id])) {
          found = id;
          break;
        }
      }
    }
    if (found < 0) {
      ++pos;
      continue;
    }
    encode_plain(text.substr(plain_begin, pos - plain_begin));
    ids.push_back(found);
    pos += tokens_[found].size();
    plain_begin = pos;
  }
  encode_plain(text.substr(plain_begin));
  return ids;
}

std::string Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    fail("token id {} is outside the vocabulary (0..{})", id, vocab_size() - 1);
  }
  const std::string& stored = tokens_[id];
  const int32_t type = token_type_[id];
  if (type == kTokenTypeControl || type == kTokenTypeUserDefined) return stored;
  // A character outside the byte map (not the spelling of a byte-level vocabulary) is kept as it
  // is stored.
  const ByteMap& map = byte_map();
  std::string text;
  text.reserve(stored.size());
  for (size_t i = 0; i < stored.size();) {
    const Decoded d = decode_utf8(stored, i);
    if (d.cp < map.char_to_byte.size() && map.char_to_byte[d.cp] >= 0) {
      text += static_cast<char>(map.char_to_byte[d.cp]);
    } else {
      text.append(stored, i, d.len);
    }
    i += d.len;
  }
  return text;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (const int32_t id : ids) text += token_text(id);
  return text;
}

std::string Tokenizer::chat_prompt(const std::vector<ChatMessage>& messages,
                                   bool add_generation_prompt) {
  // SmolLM2-Instruct's template (tokenizer.chat_template): the default system message is added
  // inside the message loop, so an empty conversation gets none.
  std::string prompt;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && messages[0].role != "system") {
      prompt +=
          "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
          "Face<|im_end|>\n";
    }
    prompt += "<|im_start|>";
    prompt += messages[i].role;
    prompt += '\n';
    prompt += messages[i].content;
    prompt += "<|im_end|>\n";
  }
  if (add_generation_prompt) prompt += "<|im_start|>assistant\n";
  return prompt;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && token_type_[id] == kTokenTypeControl;
}

}  // namespace lsa_decode
