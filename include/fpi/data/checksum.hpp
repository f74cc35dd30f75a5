// SHA-256 (FIPS 180-4) and the sha256sum file format, so bundled data can be checked before it is used:
// a corrupted or changed image would otherwise go on to train and score models without a word.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fpi::data {

// The SHA-256 digest of `bytes` as 64 lower-case hex digits.
std::string sha256_hex(std::string_view bytes);

// One line of a sha256sum file: the expected digest (lower case) and the path relative to the file's
// folder.
struct Sha256Entry {
  std::string sha256;
  std::string path;
};

// Parses sha256sum's output format: each line "<64 hex digits>  <relative path>" (or " *<path>", the binary
// marker). Empty lines are skipped; anything else that does not fit, and paths that are absolute or climb
// out of the folder with "..", are errors naming `name` and the line. At least one entry is required.
std::vector<Sha256Entry> parse_sha256sums(std::string_view text, const std::string& name);

// Checks that `bytes`, read from `path`, have the digest `expected`; the error names the path and both
// digests.
void check_sha256(std::string_view bytes, const std::string& expected, const std::string& path);

// Reads directory/sums_file and checks every file it lists (relative to `directory`): each must exist and
// match. Errors name the file at fault.
void verify_sha256sums(const std::string& directory, const std::string& sums_file = "SHA256SUMS");

}  // namespace fpi::data
