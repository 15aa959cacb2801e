// Replays the fuzz corpora in the normal suite (also under the sanitizers):
// every committed seed (tests/fuzz/corpus/<harness>/) and every input a
// fuzzer found (tests/fuzz/regressions/<harness>/) must keep every harness
// property (harnesses.hpp). The seeds must also be what the library's
// writers produce today, and be accepted by their loaders.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "fuzz/seeds.hpp"

namespace qaware {
namespace fuzz {
namespace {

using Harness = std::function<std::string(const std::uint8_t*, std::size_t)>;

const std::map<std::string, Harness>& harnesses() {
  static const std::map<std::string, Harness> h = {{"json", json},
                                                   {"safetensors", safetensors},
                                                   {"state_dict", state_dict},
                                                   {"checkpoint", checkpoint},
                                                   {"int8_model", int8_model}};
  return h;
}

std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(FuzzRegression, CommittedInputsKeepEveryProperty) {
  std::size_t replayed = 0;
  for (const auto& [name, run] : harnesses()) {
    for (const char* kind : {"corpus", "regressions"}) {
      for (const auto& f : files_in(std::filesystem::path(QAWARE_FUZZ_DIR) / kind / name)) {
        const Bytes b = file_bytes(f.string());
        EXPECT_EQ(run(b.data(), b.size()), "") << f;
        ++replayed;
      }
    }
  }
  EXPECT_GE(replayed, 9u) << "the seed corpora are missing";
}

TEST(FuzzRegression, SeedsAreTodaysWriterOutputAndLoad) {
  const auto seeds = make_seeds();
  ASSERT_EQ(seeds.size(), harnesses().size());
  for (const auto& [name, list] : seeds) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::filesystem::path f = std::filesystem::path(QAWARE_FUZZ_DIR) / "corpus" / name / ("seed-" + std::to_string(i));
      EXPECT_EQ(file_bytes(f.string()), list[i])
          << f << " is stale: regenerate with qaware_fuzz_write_seeds tests/fuzz/corpus";
    }
  }
  // Accepted, not merely rejected cleanly.
  for (const Bytes& b : seeds.at("json")) EXPECT_NO_THROW(io::json::parse(std::string(b.begin(), b.end())));
  for (const Bytes& b : seeds.at("safetensors")) EXPECT_NO_THROW(io::parse_safetensors(b.data(), b.size()));
  {
    Rng rng(7);
    SmallModel m(rng);
    const Bytes& b = seeds.at("state_dict")[0];
    EXPECT_NO_THROW(m.load_state_dict(io::parse_safetensors(b.data(), b.size()).tensors));
  }
  {
    Rng rng(7);
    SmallModel m(rng);
    AdamW<float> opt(nn::make_param_groups<float>(m));
    LrSchedule sched = linear_schedule_with_warmup(opt, 2, 10);
    Rng data_rng(3);
    const Bytes& b = seeds.at("checkpoint")[0];
    const std::string path = scratch_file("seedcheck", b.data(), b.size());
    EXPECT_NO_THROW(nn::load_checkpoint<float>(path, m, &opt, &sched, {{"data", &data_rng}}));
    std::remove(path.c_str());
  }
  for (const Bytes& b : seeds.at("int8_model")) {
    const std::string path = scratch_file("seedcheck", b.data(), b.size());
    EXPECT_NO_THROW(deploy::load(path));
    std::remove(path.c_str());
  }
}

}  // namespace
}  // namespace fuzz
}  // namespace qaware
