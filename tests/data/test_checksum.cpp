// SHA-256 against the FIPS 180-4 example vectors and Python hashlib at the padding boundaries, and the
// sha256sum file check on tests/data/fixtures/sha256/ (made with Python's hashlib; sha256sum -c agrees).
#include <gtest/gtest.h>

#include <string>

#include "fpi/data/checksum.hpp"
#include "test_util.hpp"

namespace fpi::data {
namespace {

using testing::error_of;

const std::string kFixtures = std::string(FPI_SOURCE_DIR) + "/tests/data/fixtures/sha256";

void expect_contains(const std::string& message, const std::string& fragment) {
  EXPECT_NE(message.find(fragment), std::string::npos) << "'" << message << "' lacks '" << fragment << "'";
}

TEST(Sha256, StandardVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
                       "lmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// 55 bytes is the longest message whose padding fits one block; 56 to 63 need a second; 64 and 65 cross
// a full block. Expected values from Python's hashlib.
TEST(Sha256, PaddingBoundaries) {
  const std::pair<std::size_t, const char*> cases[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
      {128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"}};
  for (const auto& [length, expected] : cases) EXPECT_EQ(sha256_hex(std::string(length, 'a')), expected) << length;
}

TEST(Sha256Sums, MatchingFolderVerifies) { EXPECT_NO_THROW(verify_sha256sums(kFixtures)); }

TEST(Sha256Sums, MismatchNamesTheFileAndBothDigests) {
  const std::string message = error_of([] { verify_sha256sums(kFixtures, "SHA256SUMS.mismatch"); });
  expect_contains(message, kFixtures + "/sub/fox.txt: sha256 mismatch (expected ba7816bf");
  expect_contains(message, "got 5cac4f980fedc3d3f1f99b4be3472c9b30d56523e632d151237ec9309048bda9");
  expect_contains(message, "the file is corrupt or was changed");
}

TEST(Sha256Sums, MissingFileIsNamed) {
  const std::string message = error_of([] { verify_sha256sums(kFixtures, "SHA256SUMS.missing"); });
  expect_contains(message, kFixtures + "/sub/gone.txt: missing (listed in " + kFixtures + "/SHA256SUMS.missing)");
}

TEST(Sha256Sums, MalformedLineIsNamed) {
  // Line 2 is blank and skipped; line 3 has a 63-digit hash.
  const std::string message = error_of([] { verify_sha256sums(kFixtures, "SHA256SUMS.malformed"); });
  expect_contains(message, kFixtures + "/SHA256SUMS.malformed:3: expected \"<64 hex digits>  <path>\"");
}

TEST(Sha256Sums, MissingSumsFileIsNamed) {
  const std::string message = error_of([] { verify_sha256sums(kFixtures, "NO_SUCH_FILE"); });
  expect_contains(message, "cannot open '" + kFixtures + "/NO_SUCH_FILE': No such file or directory");
}

TEST(Sha256Sums, ParserAcceptsBinaryMarkerUpperCaseAndCrlf) {
  const std::string hash(64, 'A');
  const auto entries = parse_sha256sums(hash + " *a b.png\r\n" + hash + "  dir/c.png", "sums");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].sha256, std::string(64, 'a'));
  EXPECT_EQ(entries[0].path, "a b.png");
  EXPECT_EQ(entries[1].path, "dir/c.png");
}

TEST(Sha256Sums, ParserRejectsPathsOutsideTheFolderAndEmptyLists) {
  const std::string hash(64, '0');
  expect_contains(error_of([&] { parse_sha256sums(hash + "  ../x.png\n", "sums"); }), "sums:1: the path '../x.png'");
  expect_contains(error_of([&] { parse_sha256sums(hash + "  /etc/x\n", "sums"); }), "sums:1: the path '/etc/x'");
  expect_contains(error_of([&] { parse_sha256sums(hash + " x.png\n", "sums"); }), "sums:1: expected");
  expect_contains(error_of([&] { parse_sha256sums(std::string(63, '0') + "g  x.png\n", "sums"); }), "sums:1: expected");
  expect_contains(error_of([&] { parse_sha256sums("\n\n", "sums"); }), "sums: lists no files");
}

}  // namespace
}  // namespace fpi::data
