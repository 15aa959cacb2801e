// write_file_atomic under failure and on POSIX specifics: a writer killed
// with SIGKILL at any point leaves the old file or the complete new one;
// its temporary is never a valid name and is removed by the next write to
// the same path; symbolic links are followed; permissions are kept.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "qaware/io/safetensors.hpp"

namespace qaware::io {
namespace {

namespace fs = std::filesystem;

TensorDict model_of(float value, Index n) {
  TensorDict t;
  t["w"] = TensorData::from(DynTensor<float>(Shape{n}, value));
  return t;
}

fs::path fresh_dir(const std::string& tag) {
  const fs::path d = fs::path(::testing::TempDir()) / ("qaware_atomic_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The value every element of the file's "w" holds (the file must be whole).
float value_of(const fs::path& p, Index want_old, Index want_new) {
  const Safetensors f = load_safetensors(p.string());
  const DynTensor<float> v = f.tensors.at("w").as<float>();
  EXPECT_TRUE(v.numel() == want_old || v.numel() == want_new) << v.numel();
  for (Index i = 0; i < v.numel(); ++i)
    if (v[i] != v[0]) return -1.0f;
  return v.numel() ? v[0] : -1.0f;
}

// The child writes a new 32 MiB safetensors file through write_file_atomic
// in 16 chunks and reports each chunk on a pipe; the parent kills it with
// SIGKILL once chunk `kill_after` is out (-1: at once, before it writes;
// 16: never). Returns whether a temporary was left behind.
bool write_and_kill(const fs::path& path, const fs::path& dir, int kill_after, Index n_old, Index n_new) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  EXPECT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    const std::vector<std::uint8_t> bytes = serialize_safetensors(model_of(2.0f, n_new));
    try {
      write_file_atomic(path.string(), [&](std::FILE* f, const std::string& tmp) {
        const std::size_t chunk = (bytes.size() + 15) / 16;
        for (int c = 0; c < 16; ++c) {
          const std::size_t begin = std::min(bytes.size(), c * chunk), end = std::min(bytes.size(), begin + chunk);
          write_bytes(f, bytes.data() + begin, end - begin, tmp);
          std::fflush(f);
          const char note = static_cast<char>(c);
          if (::write(fds[1], &note, 1) != 1) ::_exit(4);
        }
      });
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  if (kill_after < 0) ::kill(pid, SIGKILL);
  char note = 0;
  while (kill_after >= 0 && kill_after < 16 && ::read(fds[0], &note, 1) == 1) {
    if (note == kill_after) {
      ::kill(pid, SIGKILL);
      break;
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fds[0]);
  if (kill_after >= 16) {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the writer failed";
  }
  // The target is one of the two complete files, whatever the moment.
  const float v = value_of(path, n_old, n_new);
  EXPECT_TRUE(v == 1.0f || v == 2.0f) << "after a kill at chunk " << kill_after << " the file holds " << v;
  if (kill_after >= 0 && kill_after < 16) {
    EXPECT_EQ(v, 1.0f) << "killed before the rename, yet the file is new";
  }
  bool temporary = false;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path() == path) continue;
    const std::string name = e.path().filename().string();
    // Nothing but our own temporaries, which no reader would open as the model.
    EXPECT_EQ(name.rfind("model.safetensors.tmp.", 0), 0u) << name;
    temporary = true;
  }
  return temporary;
}

TEST(AtomicWriteTest, ASigkilledWriterLeavesTheOldOrTheNewFile) {
  const fs::path dir = fresh_dir("kill");
  const fs::path path = dir / "model.safetensors";
  const Index n_old = Index(1) << 20, n_new = Index(8) << 20;  // 4 MiB, 32 MiB
  for (int kill_after : {-1, 0, 7, 15}) {
    save_safetensors(path.string(), model_of(1.0f, n_old));  // the old file again (and the stale temporaries go)
    const bool left = write_and_kill(path, dir, kill_after, n_old, n_new);
    if (kill_after >= 0) {
      EXPECT_TRUE(left) << "a writer killed mid-write left no temporary at chunk " << kill_after;
    }
  }
  // A writer that is not killed replaces the file, and removes what the
  // killed ones left.
  EXPECT_FALSE(write_and_kill(path, dir, 16, n_old, n_new));
  EXPECT_EQ(value_of(path, n_old, n_new), 2.0f);
  fs::remove_all(dir);
}

TEST(AtomicWriteTest, FollowsASymbolicLinkAndKeepsThePermissions) {
  const fs::path dir = fresh_dir("link");
  const fs::path real = dir / "real.safetensors", link = dir / "link.safetensors";
  save_safetensors(real.string(), model_of(1.0f, 4));
  ASSERT_EQ(::chmod(real.c_str(), 0640), 0);
  fs::create_symlink("real.safetensors", link);  // relative target
  save_safetensors(link.string(), model_of(2.0f, 4));
  EXPECT_TRUE(fs::is_symlink(link)) << "the link was replaced by a file";
  EXPECT_EQ(value_of(real, 4, 4), 2.0f);
  struct stat st;
  ASSERT_EQ(::stat(real.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qaware::io
