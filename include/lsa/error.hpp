// The exception thrown for invalid configuration (never from per-step calls).
#pragma once

#include <stdexcept>
#include <string>

namespace lsa {

/// Configuration error; the message names the offending field and the rule it breaks.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace lsa
