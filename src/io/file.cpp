// Whole-file reads and crash-safe replacement of files and symbolic links (write to a temporary name in
// the same directory, fsync, rename over the target, fsync the directory). The rename is atomic only
// within one file system, which is why the temporary file sits next to its target and not in /tmp.
#include "fpi/io/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "fpi/core.hpp"

namespace fpi::io {
namespace {

std::string os_error(int error) { return std::strerror(error); }

// Closes the descriptor on every path out, so an error thrown halfway never leaks it.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  // close() reports write-back errors on some file systems (NFS), so a writer must look at its result.
  int close() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

std::string directory_of(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// A name no other writer uses: the process id tells processes apart and the counter tells apart the
// writes of one process, whatever thread they come from. O_EXCL (or symlink's refusal to replace)
// settles a clash with a temporary file a crashed process left behind: the caller takes the next name.
std::string temporary_name(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  const std::filesystem::path p(path);
  const std::string name = detail::concat(".", p.filename().string(), ".tmp.", ::getpid(), ".", counter.fetch_add(1));
  return (p.parent_path() / name).string();
}

constexpr int kNameAttempts = 100;

bool write_all(int fd, std::string_view contents) {
  while (!contents.empty()) {
    const ssize_t written = ::write(fd, contents.data(), contents.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    contents.remove_prefix(static_cast<std::size_t>(written));
  }
  return true;
}

}  // namespace

std::string read_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  FPI_CHECK(fd.get() >= 0, "cannot open '", path, "': ", os_error(errno));
  struct stat info {};
  FPI_CHECK(::fstat(fd.get(), &info) == 0, "cannot read '", path, "': ", os_error(errno));
  std::string contents;
  // The size is a hint (the file may grow or shrink while it is read, or be a pipe that reports 0).
  contents.reserve(S_ISREG(info.st_mode) ? static_cast<std::size_t>(info.st_size) : 0);
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd.get(), buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    FPI_CHECK(got >= 0, "cannot read '", path, "': ", os_error(errno));
    if (got == 0) break;
    contents.append(buffer, static_cast<std::size_t>(got));
  }
  return contents;
}

void fsync_directory(const std::string& directory) {
  Fd fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  FPI_CHECK(fd.get() >= 0, "cannot open directory '", directory, "' to fsync it: ", os_error(errno));
  // Some file systems cannot fsync a directory and say so with EINVAL; they have nothing to flush.
  FPI_CHECK(::fsync(fd.get()) == 0 || errno == EINVAL, "cannot fsync directory '", directory, "': ",
            os_error(errno));
}

void write_file_atomically(const std::string& path, std::string_view contents) {
  const std::string directory = directory_of(path);
  // A checkpoint written with 0600 by a careful user stays private when it is replaced.
  struct stat old_info {};
  const bool replacing = ::stat(path.c_str(), &old_info) == 0 && S_ISREG(old_info.st_mode);

  std::string temporary;
  int fd = -1;
  for (int attempt = 0; attempt < kNameAttempts && fd < 0; ++attempt) {
    temporary = temporary_name(path);
    fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  FPI_CHECK(fd >= 0, "cannot write '", path, "': cannot create a temporary file in '", directory, "': ",
            os_error(errno));
  Fd file(fd);
  const auto fail_here = [&](const char* step) {
    const int error = errno;
    ::unlink(temporary.c_str());
    fail("cannot write '", path, "': ", step, " failed: ", os_error(error));
  };
  if (replacing && ::fchmod(file.get(), old_info.st_mode & 0777) != 0) fail_here("fchmod");
  if (!write_all(file.get(), contents)) fail_here("write");
  if (::fsync(file.get()) != 0) fail_here("fsync");
  if (file.close() != 0) fail_here("close");
  if (::rename(temporary.c_str(), path.c_str()) != 0) fail_here("rename");
  fsync_directory(directory);
}

void replace_symlink_atomically(const std::string& link, const std::string& target) {
  struct stat info {};
  FPI_CHECK(::lstat(link.c_str(), &info) != 0 || S_ISLNK(info.st_mode), "cannot point '", link, "' at '", target,
            "': '", link, "' exists and is not a symbolic link");
  std::string temporary;
  bool made = false;
  for (int attempt = 0; attempt < kNameAttempts && !made; ++attempt) {
    temporary = temporary_name(link);
    made = ::symlink(target.c_str(), temporary.c_str()) == 0;
    if (!made && errno != EEXIST) break;
  }
  FPI_CHECK(made, "cannot point '", link, "' at '", target, "': cannot create a link in '", directory_of(link),
            "': ", os_error(errno));
  if (::rename(temporary.c_str(), link.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    fail("cannot point '", link, "' at '", target, "': rename failed: ", os_error(error));
  }
  fsync_directory(directory_of(link));
}

}  // namespace fpi::io
