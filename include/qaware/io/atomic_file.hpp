#pragma once
// Atomic file replacement: write to "<path>.tmp.<pid>.<unique>" in the same
// directory, flush (and fsync on POSIX), close, then std::rename over
// <path>. Readers see either the old file or the complete new one; on any
// failure the temporary is removed, <path> is left as it was and a
// qaware::Error names the path and the reason.
// On POSIX also:
//   - a symbolic link at <path> is followed: the file it points to is
//     replaced and the link stays;
//   - an existing file keeps its permission bits;
//   - the directory is fsynced after the rename, so that the new name
//     survives a power loss;
//   - temporaries that killed writers left for the same <path> (their pid
//     no longer runs) are removed before the write. A temporary is never
//     a valid name for a reader: it ends in ".tmp.<pid>.<counter>.<clock>".

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "qaware/core/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#define QAWARE_IO_POSIX 1
#else
#define QAWARE_IO_POSIX 0
#endif

namespace qaware {
namespace io {

namespace detail {

inline std::string errno_text(int err) { return err ? std::string(std::strerror(err)) : std::string("unknown error"); }

// A name no other writer (thread or process) picks: pid, a process-wide
// counter and the clock.
inline std::string temp_name_for(const std::string& path) {
  static std::atomic<unsigned long long> counter{0};
  unsigned long long pid = 0;
#if QAWARE_IO_POSIX
  pid = static_cast<unsigned long long>(::getpid());
#endif
  const auto ticks = static_cast<unsigned long long>(std::chrono::steady_clock::now().time_since_epoch().count());
  return ::qaware::detail::concat(path, ".tmp.", pid, ".", counter.fetch_add(1), ".", std::hex, ticks);
}

}  // namespace detail

// Writes bytes to `out`, throwing on a short write.
inline void write_bytes(std::FILE* out, const void* data, std::size_t n, const std::string& path) {
  if (n == 0) return;
  errno = 0;
  const std::size_t put = std::fwrite(data, 1, n, out);
  QAWARE_CHECK(put == n, "write_file_atomic: writing ", path, " failed after ", put, " of ", n, " bytes: ",
               detail::errno_text(errno));
}

#if QAWARE_IO_POSIX
namespace detail {

// The file a write to `path` must replace: `path` itself, or what a chain of
// symbolic links at `path` points to (relative targets resolved against the
// link's directory).
inline std::string write_target(std::string path) {
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return path;
    std::string buf(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 255) + 1, '\0');
    const ssize_t n = ::readlink(path.c_str(), &buf[0], buf.size());
    QAWARE_CHECK(n >= 0 && static_cast<std::size_t>(n) < buf.size(), "write_file_atomic: cannot read the link ", path);
    buf.resize(static_cast<std::size_t>(n));
    if (!buf.empty() && buf[0] == '/') {
      path = buf;
    } else {
      const std::size_t slash = path.rfind('/');
      path = slash == std::string::npos ? buf : path.substr(0, slash + 1) + buf;
    }
  }
  ::qaware::detail::fail(::qaware::detail::concat("write_file_atomic: too many levels of symbolic links at ", path));
}

inline std::string directory_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Removes "<path>.tmp.<pid>.*" files whose writer process no longer exists.
inline void remove_stale_temporaries(const std::string& path) {
  const std::string dir = directory_of(path);
  const std::size_t slash = path.rfind('/');
  const std::string prefix = (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp.";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (pid <= 0 || !end || *end != '.') continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    ::unlink((dir + "/" + name).c_str());
  }
  ::closedir(d);
}

inline void fsync_directory(const std::string& dir, const std::string& path) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  QAWARE_CHECK(fd >= 0, "write_file_atomic: cannot open the directory of ", path, " to sync it: ", errno_text(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems cannot sync a directory (EINVAL); the rename itself is done.
  QAWARE_CHECK(rc == 0 || err == EINVAL, "write_file_atomic: fsync of the directory of ", path, " failed: ",
               errno_text(err));
}

}  // namespace detail
#endif

// Creates `path` atomically from what `write(file, temp_path)` writes.
inline void write_file_atomic(const std::string& requested, const std::function<void(std::FILE*, const std::string&)>& write) {
  QAWARE_CHECK(!requested.empty(), "write_file_atomic: empty path");
#if QAWARE_IO_POSIX
  const std::string path = detail::write_target(requested);
  detail::remove_stale_temporaries(path);
  struct stat old;
  const bool had_file = ::stat(path.c_str(), &old) == 0 && S_ISREG(old.st_mode);
#else
  const std::string& path = requested;
#endif
  std::string tmp;
  std::FILE* f = nullptr;
  for (int attempt = 0; attempt < 16 && !f; ++attempt) {
    tmp = detail::temp_name_for(path);
    errno = 0;
    f = std::fopen(tmp.c_str(), "wbx");  // "x": fail rather than reuse an existing file
    if (!f && errno != EEXIST) break;
  }
  QAWARE_CHECK(f != nullptr, "write_file_atomic: cannot create temporary file ", tmp, " for ", path, ": ",
               detail::errno_text(errno));
  try {
#if QAWARE_IO_POSIX
    if (had_file) {
      errno = 0;
      QAWARE_CHECK(::fchmod(::fileno(f), old.st_mode & 07777) == 0, "write_file_atomic: cannot give ", tmp,
                   " the permissions of ", path, ": ", detail::errno_text(errno));
    }
#endif
    write(f, tmp);
    errno = 0;
    QAWARE_CHECK(std::fflush(f) == 0, "write_file_atomic: flushing ", tmp, " failed: ", detail::errno_text(errno));
#if QAWARE_IO_POSIX
    errno = 0;
    QAWARE_CHECK(::fsync(::fileno(f)) == 0, "write_file_atomic: fsync of ", tmp, " failed: ",
                 detail::errno_text(errno));
#endif
    errno = 0;
    const int closed = std::fclose(f);
    f = nullptr;
    QAWARE_CHECK(closed == 0, "write_file_atomic: closing ", tmp, " failed: ", detail::errno_text(errno));
    errno = 0;
    QAWARE_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "write_file_atomic: cannot rename ", tmp, " to ", path,
                 ": ", detail::errno_text(errno));
  } catch (...) {
    if (f) std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
#if QAWARE_IO_POSIX
  detail::fsync_directory(detail::directory_of(path), path);
#endif
}

}  // namespace io
}  // namespace qaware
