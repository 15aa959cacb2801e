#pragma once
// Atomic file replacement: write to "<path>.tmp.<unique>" in the same
// directory, flush (and fsync on POSIX), close, then std::rename over
// <path>. Readers see either the old file or the complete new one; on any
// failure the temporary is removed, <path> is left as it was and a
// qaware::Error names the path and the reason.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "qaware/core/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
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

// Creates `path` atomically from what `write(file, temp_path)` writes.
inline void write_file_atomic(const std::string& path, const std::function<void(std::FILE*, const std::string&)>& write) {
  QAWARE_CHECK(!path.empty(), "write_file_atomic: empty path");
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
}

}  // namespace io
}  // namespace qaware
