#include "haystack.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include "error.hpp"
#include "tokenizer.hpp"

namespace lsa_decode {

Haystack::Haystack(const Tokenizer& tokenizer, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw DecodeError(fmt::format(
        "cannot read the haystack text '{}' (scripts/genesis.sh > genesis.txt writes Genesis)",
        path));
  }
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<int32_t> ids = tokenizer.encode(" " + line, /*parse_special=*/false);
    if (ids.empty()) continue;
    num_tokens_ += static_cast<int64_t>(ids.size());
    pieces_.push_back(std::move(ids));
  }
  if (pieces_.empty()) throw DecodeError(fmt::format("the haystack text '{}' has no text", path));
}

std::vector<int32_t> Haystack::tokens(int64_t first, int64_t n,
                                      std::vector<int64_t>* boundaries) const {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(std::max<int64_t>(n, 0)));
  if (boundaries != nullptr) boundaries->assign(1, 0);
  for (int64_t i = first % num_pieces(); static_cast<int64_t>(out.size()) < n;
       i = (i + 1) % num_pieces()) {
    const std::vector<int32_t>& p = piece(i);
    const auto take =
        std::min<int64_t>(static_cast<int64_t>(p.size()), n - static_cast<int64_t>(out.size()));
    out.insert(out.end(), p.begin(), p.begin() + take);
    if (boundaries != nullptr) boundaries->push_back(static_cast<int64_t>(out.size()));
  }
  return out;
}

}  // namespace lsa_decode
