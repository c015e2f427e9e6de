// Command-line helpers of lsa-decode and lsa-eval: option errors, bounded integers, files, timing.
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "error.hpp"

namespace lsa_decode {

/// Throws DecodeError saying what is wrong with the command line and how to get help; each
/// program defines it (the message names the program).
[[noreturn]] void usage_error(const std::string& what);

/// Walks argv: `for (ArgReader args(argc, argv); args.next();)`, then option() is the current
/// argument and value() takes the one after it (usage_error when there is none).
class ArgReader {
 public:
  ArgReader(int argc, char** argv) noexcept : argc_(argc), argv_(argv) {}
  /// Moves to the next argument; false past the last.
  bool next() {
    if (++i_ >= argc_) return false;
    option_ = argv_[i_];
    return true;
  }
  /// The current argument.
  const std::string& option() const noexcept { return option_; }
  /// The argument after the current one, consumed.
  std::string value() {
    if (i_ + 1 >= argc_) usage_error(fmt::format("{} needs a value", option_));
    return argv_[++i_];
  }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string option_;
};

/// The integer in `value`, given for option `flag`, when it lies in [lo, hi]; else usage_error.
inline int64_t parse_int(const std::string& flag, const std::string& value, int64_t lo,
                         int64_t hi) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || v < lo || v > hi) {
    usage_error(fmt::format("{} must be an integer in [{}, {}] (got '{}')", flag, lo, hi, value));
  }
  return v;
}

/// The whole file at `path`; DecodeError when it cannot be read.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DecodeError(fmt::format("cannot read '{}'", path));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Seconds elapsed since `t0`.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace lsa_decode
