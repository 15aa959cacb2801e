// Writes the fuzz harnesses' seed corpora: DIR/<harness>/seed-<n>.
//   qaware_fuzz_write_seeds tests/fuzz/corpus
#include <cstdio>
#include <filesystem>

#include "fuzz/seeds.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  for (const auto& [harness, list] : qaware::fuzz::make_seeds()) {
    const std::filesystem::path dir = std::filesystem::path(argv[1]) / harness;
    std::filesystem::create_directories(dir);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string path = (dir / ("seed-" + std::to_string(i))).string();
      std::FILE* f = std::fopen(path.c_str(), "wb");
      if (!f) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        return 1;
      }
      std::fwrite(list[i].data(), 1, list[i].size(), f);
      std::fclose(f);
      std::printf("%s: %zu bytes\n", path.c_str(), list[i].size());
    }
  }
  return 0;
}
