// Whole-file reads and the crash-safe writes: contents and permissions after a replace, failures that
// leave the old file and no temporary file behind, and links replaced in one step.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "fpi/io/file.hpp"
#include "io/temp_dir.hpp"
#include "test_util.hpp"

namespace fpi::io {
namespace {

using testing::error_of;
using testing::TempDir;

void put(const std::string& path, const std::string& contents) {
  std::ofstream(path, std::ios::binary) << contents;
}

// The names in `dir`, to show that a failed write left no temporary file.
std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ReadFile, ReturnsEveryByte) {
  TempDir dir;
  const std::string contents("a\0b\xff\n", 5);
  put(dir.file("f"), contents);
  EXPECT_EQ(read_file(dir.file("f")), contents);
  put(dir.file("empty"), "");
  EXPECT_EQ(read_file(dir.file("empty")), "");
}

TEST(ReadFile, ErrorsNameThePathAndTheOsError) {
  TempDir dir;
  EXPECT_EQ(error_of([&] { read_file(dir.file("missing")); }),
            "cannot open '" + dir.file("missing") + "': No such file or directory");
  EXPECT_EQ(error_of([&] { read_file(dir.path().string()); }),
            "cannot read '" + dir.path().string() + "': Is a directory");
}

TEST(WriteFileAtomically, CreatesAndReplaces) {
  TempDir dir;
  const std::string path = dir.file("out.txt");
  write_file_atomically(path, "first");
  EXPECT_EQ(read_file(path), "first");
  const std::string binary("x\0y", 3);
  write_file_atomically(path, binary);
  EXPECT_EQ(read_file(path), binary);
  write_file_atomically(path, "");
  EXPECT_EQ(read_file(path), "");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"out.txt"});
}

TEST(WriteFileAtomically, RelativePathWritesInTheCurrentDirectory) {
  TempDir dir;
  // Restores the working directory even when the write throws, so later tests are not moved.
  struct WorkingDirectory {
    std::filesystem::path previous = std::filesystem::current_path();
    ~WorkingDirectory() { std::filesystem::current_path(previous); }
  } restore;
  std::filesystem::current_path(dir.path());
  write_file_atomically("here.txt", "data");
  EXPECT_EQ(read_file(dir.file("here.txt")), "data");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"here.txt"});
}

TEST(WriteFileAtomically, KeepsThePermissionsOfTheFileItReplaces) {
  TempDir dir;
  const std::string path = dir.file("private");
  put(path, "old");
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  write_file_atomically(path, "new");
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(read_file(path), "new");
}

TEST(WriteFileAtomically, MissingDirectoryThrowsNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/out.txt");
  const std::string message = error_of([&] { write_file_atomically(path, "x"); });
  EXPECT_TRUE(message.starts_with("cannot write '" + path + "': ")) << message;
  EXPECT_TRUE(message.ends_with(": No such file or directory")) << message;
  EXPECT_TRUE(names_in(dir.path()).empty());
}

// A write that fails halfway, as on a full disk: the file-size limit makes write() fail with EFBIG
// after the temporary file exists, which is the path a full disk takes.
TEST(WriteFileAtomically, FailedWriteKeepsTheOldFileAndRemovesTheTemporary) {
  TempDir dir;
  const std::string path = dir.file("ckpt");
  put(path, "old contents");
  rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  // Without this, exceeding the limit kills the process instead of failing the write.
  const auto previous_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string message = error_of([&] { write_file_atomically(path, std::string(1 << 16, 'z')); });
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, previous_handler);
  EXPECT_EQ(message, "cannot write '" + path + "': write failed: File too large");
  EXPECT_EQ(read_file(path), "old contents");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"ckpt"});
}

TEST(WriteFileAtomically, ReadOnlyDirectoryThrowsAndKeepsTheOldFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into read-only directories, so there is no failure to test";
  TempDir dir;
  const std::string path = dir.file("ckpt");
  put(path, "old");
  ASSERT_EQ(::chmod(dir.path().c_str(), 0555), 0);
  const std::string message = error_of([&] { write_file_atomically(path, "new"); });
  ::chmod(dir.path().c_str(), 0755);
  EXPECT_TRUE(message.starts_with("cannot write '" + path + "': ")) << message;
  EXPECT_TRUE(message.ends_with(": Permission denied")) << message;
  EXPECT_EQ(read_file(path), "old");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"ckpt"});
}

TEST(WriteFileAtomically, ReplacesALinkInsteadOfWritingThroughIt) {
  TempDir dir;
  put(dir.file("target"), "target contents");
  std::filesystem::create_symlink("target", dir.file("link"));
  write_file_atomically(dir.file("link"), "own contents");
  EXPECT_FALSE(std::filesystem::is_symlink(dir.file("link")));
  EXPECT_EQ(read_file(dir.file("link")), "own contents");
  EXPECT_EQ(read_file(dir.file("target")), "target contents");
}

TEST(ReplaceSymlinkAtomically, CreatesThenRepointsALink) {
  TempDir dir;
  put(dir.file("epoch-1"), "one");
  put(dir.file("epoch-2"), "two");
  const std::string link = dir.file("last");
  replace_symlink_atomically(link, "epoch-1");
  EXPECT_EQ(std::filesystem::read_symlink(link), "epoch-1");
  EXPECT_EQ(read_file(link), "one");
  replace_symlink_atomically(link, "epoch-2");
  EXPECT_EQ(std::filesystem::read_symlink(link), "epoch-2");
  EXPECT_EQ(read_file(link), "two");
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"epoch-1", "epoch-2", "last"}));
}

TEST(ReplaceSymlinkAtomically, RefusesToReplaceAFileAndReportsAMissingDirectory) {
  TempDir dir;
  put(dir.file("data"), "keep me");
  EXPECT_EQ(error_of([&] { replace_symlink_atomically(dir.file("data"), "x"); }),
            "cannot point '" + dir.file("data") + "' at 'x': '" + dir.file("data") +
                "' exists and is not a symbolic link");
  EXPECT_EQ(read_file(dir.file("data")), "keep me");
  const std::string link = dir.file("missing/last");
  EXPECT_EQ(error_of([&] { replace_symlink_atomically(link, "x"); }),
            "cannot point '" + link + "' at 'x': cannot create a link in '" + dir.file("missing") +
                "': No such file or directory");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"data"});
}

TEST(FsyncDirectory, AcceptsADirectoryAndNamesAMissingOne) {
  TempDir dir;
  EXPECT_EQ(error_of([&] { fsync_directory(dir.path().string()); }), "(no error)");
  EXPECT_EQ(error_of([&] { fsync_directory(dir.file("missing")); }),
            "cannot open directory '" + dir.file("missing") + "' to fsync it: No such file or directory");
}

}  // namespace
}  // namespace fpi::io
