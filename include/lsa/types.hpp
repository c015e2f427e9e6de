// Small value types shared by the whole API.
#pragma once

#include <cstdint>

namespace lsa {

/// Engine-chosen id of one request's token history.
using SeqId = int64_t;

/// Where one appended token's KV lives: reserve slot and token offset inside that page.
struct TokenSlot {
  int32_t slot = -1;    ///< reserve slot holding the token's page
  int32_t offset = -1;  ///< token index inside the page, [0, page_tokens)
};

}  // namespace lsa
