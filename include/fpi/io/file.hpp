// Whole-file reads and crash-safe writes, for the files a run must never leave half written: the resolved
// config, checkpoints and the links that point at the latest and best ones. A write goes to a temporary
// file next to its target and is renamed over it, so a reader (or a run resumed after a crash or a power
// cut) sees either the old complete file or the new one. A crash can leave a temporary file behind
// (".NAME.tmp.PID.N" in the same directory); nothing reads those, and deleting them is always safe.
#pragma once

#include <string>
#include <string_view>

namespace fpi::io {

// The whole file; errors name the path and the OS error ("cannot open 'x': No such file or directory").
std::string read_file(const std::string& path);

// Crash-safe replace: writes `contents` to a new temporary file in the same directory, fsyncs it, renames
// it over `path` and fsyncs the directory. A failure before the rename (disk full, no permission, no such
// directory) leaves `path` untouched, removes the temporary file and throws naming `path` and the OS
// error. The new file keeps the permission bits of the one it replaces. A symbolic link at `path` is
// replaced by the file, not followed.
void write_file_atomically(const std::string& path, std::string_view contents);

// Points `link` at `target` (normally a name relative to the link's directory), replacing an existing
// link atomically: a new link under a temporary name, renamed over `link`, then the directory fsynced.
// Refuses to replace anything at `link` that is not a symbolic link.
void replace_symlink_atomically(const std::string& link, const std::string& target);

// Makes the directory's entries (a rename, a new file) durable.
void fsync_directory(const std::string& directory);

}  // namespace fpi::io
