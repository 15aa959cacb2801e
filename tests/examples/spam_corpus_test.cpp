// The demo's corpus reader (examples/spam/corpus.hpp): email text, MD5 split,
// tokens, and the loader on the synthetic fixture tests/data/spam_fixture.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "spam/corpus.hpp"

namespace {

std::string text_of(const std::string& raw) {
  std::string text, why;
  EXPECT_TRUE(spam::email_text(raw, text, why)) << why;
  return text;
}

std::string why_not(const std::string& raw) {
  std::string text, why;
  EXPECT_FALSE(spam::email_text(raw, text, why)) << "accepted, text: " << text;
  return why;
}

TEST(SpamCorpus, Md5MatchesRfc1321TestSuite) {
  EXPECT_EQ(spam::md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(spam::md5_hex("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(spam::md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(spam::md5_hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(spam::md5_hex("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  // 62 and 80 bytes: the padding spills into a second and a third block.
  EXPECT_EQ(spam::md5_hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  EXPECT_EQ(spam::md5_hex("12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            "57edf4a22be3c955ac49da2e2107b67a");
}

TEST(SpamCorpus, SplitReadsTheDigestAsABigEndianInteger) {
  // md5("easy-ham-1/10001.folded.txt") = e603618788987aca798ca9852e97dd93
  // (Python's hashlib); as an integer it is 0 mod 5.
  EXPECT_EQ(spam::md5_hex("easy-ham-1/10001.folded.txt"), "e603618788987aca798ca9852e97dd93");
  EXPECT_EQ(spam::md5_mod("easy-ham-1/10001.folded.txt", 5), 0u);
  EXPECT_TRUE(spam::in_test_set("easy-ham-1/10001.folded.txt"));
  // "abc" -> 0x900150983cd24fb0d6963f7d28e17f72 = 0 mod 5, 1 mod 3, 9 mod 11, 10 mod 13 (Python).
  EXPECT_EQ(spam::md5_mod("abc", 5), 0u);
  EXPECT_EQ(spam::md5_mod("abc", 3), 1u);
  EXPECT_EQ(spam::md5_mod("abc", 11), 9u);
  EXPECT_EQ(spam::md5_mod("abc", 13), 10u);
}

TEST(SpamCorpus, KeepsTheSubjectAndBodyAndDropsOtherHeaders) {
  const std::string t = text_of(
      "Return-Path: <x@spam.example>\nReceived: from a\n\tby b\nSubject:  Hello there \nX-Spam-Flag: YES\n\n"
      "Body line\n\nsecond paragraph\n");
  EXPECT_EQ(t, "Hello there\nBody line\n\nsecond paragraph\n");
  EXPECT_EQ(t.find("spam.example"), std::string::npos);
  EXPECT_EQ(t.find("X-Spam"), std::string::npos);
}

TEST(SpamCorpus, JoinsAFoldedSubject) {
  EXPECT_EQ(text_of("From: a\r\nsubject: one\r\n  two\r\n\tthree\r\nTo: b\r\n\r\nbody\r\n"),
            "one two three\nbody\r\n");
  // Only the Subject's continuation lines join it; a folded Received stays dropped.
  EXPECT_EQ(text_of("Received: x\n  y\nSubject: s\nX: z\n  w\n\nb"), "s\nb");
  // The first Subject wins.
  EXPECT_EQ(text_of("Subject: first\nSubject: second\n\nb"), "first\nb");
}

TEST(SpamCorpus, AnEmailWithoutABodyKeepsItsSubject) {
  EXPECT_EQ(text_of("From: a\nSubject: headers only\nTo: b\n"), "headers only\n");
  EXPECT_EQ(text_of("From: a\nSubject: s"), "s\n");  // no final newline either
}

TEST(SpamCorpus, KeepsNonAsciiBytesAsTheyAre) {
  const std::string raw = "Subject: Gr\xfc\xdf" "e\n\nPrix sp\xe9" "cial \x80\xff\n";
  const std::string t = text_of(raw);
  EXPECT_EQ(t, "Gr\xfc\xdf" "e\nPrix sp\xe9" "cial \x80\xff\n");
  std::vector<std::int64_t> ids(32);
  std::vector<float> mask(32);
  spam::encode(t, 32, ids.data(), mask.data());
  EXPECT_EQ(ids[3], 0xfc);
  EXPECT_EQ(ids[4], 0xdf);
}

TEST(SpamCorpus, RejectsMalformedEmailsWithAReason) {
  EXPECT_EQ(why_not(""), "empty file");
  EXPECT_EQ(why_not("just text\nno headers\n"), "the first line is not a header field");
  EXPECT_EQ(why_not(" Subject: indented\n\nbody"), "the first line is not a header field");
  EXPECT_EQ(why_not("From: a\nTo: b\n\n \n\t\n"), "no subject and no body");
  // An mbox "From " line is a valid start.
  EXPECT_EQ(text_of("From someone Mon Sep  2 10:00:00 2002\nSubject: s\n\nb"), "s\nb");
}

TEST(SpamCorpus, EncodesClsBytesAndPadding) {
  std::vector<std::int64_t> ids(6);
  std::vector<float> mask(6);
  spam::encode("ab", 6, ids.data(), mask.data());
  EXPECT_EQ(ids, (std::vector<std::int64_t>{spam::kCls, 'a', 'b', spam::kPad, spam::kPad, spam::kPad}));
  EXPECT_EQ(mask, (std::vector<float>{1, 1, 1, 0, 0, 0}));
  spam::encode("abcdefgh", 4, ids.data(), mask.data());  // truncated to T - 1 bytes
  EXPECT_EQ(std::vector<std::int64_t>(ids.begin(), ids.begin() + 4), (std::vector<std::int64_t>{spam::kCls, 'a', 'b', 'c'}));
  EXPECT_EQ(std::vector<float>(mask.begin(), mask.begin() + 4), (std::vector<float>{1, 1, 1, 1}));
}

TEST(SpamCorpus, LoadsTheFixtureSkippingMalformedEmails) {
  std::vector<std::string> warnings;
  const spam::Corpus c =
      spam::load_corpus(std::string(QAWARE_TEST_DATA_DIR) + "/spam_fixture", [&](const std::string& w) { warnings.push_back(w); });
  // 52 generated emails + 6 special files, of which 3 are malformed.
  EXPECT_EQ(c.train.size() + c.test.size(), 55u);
  EXPECT_EQ(c.skipped, 3u);
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_NE(warnings[0].find("easy-ham-1/10004.noheader.txt"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("hard-ham-1/10006.blank.txt"), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[2].find("spam-1/10005.empty.txt: skipped, empty file"), std::string::npos) << warnings[2];

  // The test split, as Python computes it:
  //   int(hashlib.md5(key.encode()).hexdigest(), 16) % 5 == 0
  // over the fixture's keys (10006.blank.txt is one too, but it is skipped).
  std::set<std::string> test_keys;
  for (const spam::Email& e : c.test) test_keys.insert(e.key);
  const std::set<std::string> expected = {"easy-ham-1/00008.fixture.txt", "easy-ham-1/00009.fixture.txt",
                                          "easy-ham-1/00014.fixture.txt", "easy-ham-1/10001.folded.txt",
                                          "hard-ham-1/00002.fixture.txt", "hard-ham-1/00007.fixture.txt",
                                          "spam-1/00008.fixture.txt",     "spam-1/00016.fixture.txt",
                                          "spam-1/00019.fixture.txt"};
  EXPECT_EQ(test_keys, expected);

  // Labels follow the group; .json files are not emails.
  for (const auto* split : {&c.train, &c.test})
    for (const spam::Email& e : *split) {
      EXPECT_EQ(e.label, e.key.rfind("spam", 0) == 0 ? 1 : 0) << e.key;
      EXPECT_NE(e.key.substr(e.key.size() - 4), "json") << e.key;
    }
  auto find = [&](const std::string& key) -> const spam::Email& {
    for (const auto* split : {&c.train, &c.test})
      for (const spam::Email& e : *split)
        if (e.key == key) return e;
    ADD_FAILURE() << key << " not loaded";
    static spam::Email none;
    return none;
  };
  EXPECT_EQ(find("easy-ham-1/10001.folded.txt").text, "a subject that is folded over three lines\nbody line one\r\nbody line two\r\n");
  EXPECT_EQ(find("hard-ham-1/10003.nobody.txt").text, "headers only\n");
  EXPECT_EQ(find("spam-1/10002.latin1.txt").text, "Gr\xfc\xdf" "e \xe0 vous\nPrix sp\xe9" "cial: 5\xa0" "E\n");
}

TEST(SpamCorpus, AFolderWithoutTheGroupsIsAnError) {
  EXPECT_THROW(spam::load_corpus(std::string(QAWARE_TEST_DATA_DIR), [](const std::string&) {}), std::runtime_error);
}

}  // namespace
