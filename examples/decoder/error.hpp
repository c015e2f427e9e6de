// The decoder's error type: every failure (bad model file, bad option, bad prompt) throws one with
// a message that names what is wrong.
#pragma once

#include <stdexcept>
#include <string>

namespace lsa_decode {

/// A failure of the example decoder, with a message naming the file/field/option at fault.
class DecodeError : public std::runtime_error {
 public:
  explicit DecodeError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace lsa_decode
