// Checks for numeric options that run on the option's text before CLI11 converts it, so a bad
// value is refused with the option's name and the accepted range in plain numbers
// ("--tp: expected an integer from 1 to 2147483647, got \"0\"") instead of CLI11's conversion
// failures and ranges printed as 309-digit doubles.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace shardlm::cli {

// A whole number from min to max; `range_note` says where a bound comes from, e.g. "the CPUs this
// process may use".
CLI::Validator integer_in(int64_t min, int64_t max, const std::string& range_note = "");
// Any finite number (the range of sampling options is checked once defaults are merged in).
CLI::Validator finite_number();

}  // namespace shardlm::cli
