#!/usr/bin/env python3
"""Writes tests/data/spam_fixture/: a small synthetic corpus in the layout of
the SpamAssassin npm package (<group>/<id>.txt), for the demo's loader test
and its smoke run. Every email is made up here; none comes from the corpus.

Besides ordinary ham and spam it holds the cases the loader must handle:
a folded Subject, CRLF line ends, latin-1 bytes, an email without a body,
a header-less file, an empty file and a blank email (the last three are
skipped as malformed).

    /usr/bin/python3 tools/make_spam_fixture.py
"""
import os
import random
import shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "spam_fixture")

HAM_SUBJECTS = ["Minutes of the build meeting", "Re: patch for the parser", "Lunch on Friday?",
                "Release notes draft", "Re: flaky test in CI", "Holiday rota", "Question about the API"]
HAM_WORDS = ("the build passed on the second machine after I rebased the branch and the test that "
             "failed yesterday now runs in two seconds please review the patch before the release "
             "meeting on thursday we should also update the notes").split()
SPAM_SUBJECTS = ["WIN a FREE cruise NOW", "Lowest mortgage rates!!!", "You have been selected",
                 "Cheap meds online", "Make $5000 a week from home", "URGENT: claim your prize"]
SPAM_WORDS = ("click here now to claim your free prize limited offer act today best price guaranteed "
              "no risk money back order now unsubscribe cash bonus winner credit").split()


def email(rng, spam, n):
    subject = rng.choice(SPAM_SUBJECTS if spam else HAM_SUBJECTS)
    words = SPAM_WORDS if spam else HAM_WORDS
    body = "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) for _ in range(rng.randint(2, 5)))
    sender = "offers%d@deals.example" % n if spam else "dev%d@lists.example.org" % n
    return ("Return-Path: <%s>\nReceived: from mail.example (mail.example [10.0.0.%d])\n\tby mx.example\n"
            "From: %s\nTo: user@example.org\nSubject: %s\nDate: Mon, 2 Sep 2002 10:%02d:00 +0000\n\n%s\n"
            % (sender, n % 250, sender, subject, n % 60, body)).encode("latin-1")


def main():
    rng = random.Random(7)
    shutil.rmtree(ROOT, ignore_errors=True)
    groups = {"easy-ham-1": (False, 24), "hard-ham-1": (False, 8), "spam-1": (True, 20)}
    for group, (spam, count) in groups.items():
        os.makedirs(os.path.join(ROOT, group))
        for i in range(count):
            with open(os.path.join(ROOT, group, "%05d.fixture.txt" % (i + 1)), "wb") as f:
                f.write(email(rng, spam, i))
        # Every group also has a .json beside its emails, as the package does; the loader ignores it.
        with open(os.path.join(ROOT, group, "00001.fixture.json"), "w") as f:
            f.write('{"note": "not an email"}\n')
    special = {
        # A Subject folded over three lines, CRLF line ends.
        "easy-ham-1/10001.folded.txt": b"From: a@example.org\r\nSubject: a subject that\r\n  is folded\r\n\tover three lines\r\n"
                                       b"X-Other: dropped\r\n\r\nbody line one\r\nbody line two\r\n",
        # latin-1 bytes in the subject and body.
        "spam-1/10002.latin1.txt": "Subject: Gr\u00fc\u00dfe \u00e0 vous\nFrom: x@example.org\n\nPrix sp\u00e9cial: 5\u00a0\u20ac\n"
                                   .replace("\u20ac", "E").encode("latin-1"),
        # Headers only: no blank line, so no body.
        "hard-ham-1/10003.nobody.txt": b"From: b@example.org\nSubject: headers only\nTo: c@example.org\n",
        # Not an email: the first line is not a header field.
        "easy-ham-1/10004.noheader.txt": b"this is just some text\nwith no header at all\n",
        # An empty file.
        "spam-1/10005.empty.txt": b"",
        # Headers without a subject and a blank body.
        "hard-ham-1/10006.blank.txt": b"From: d@example.org\nTo: e@example.org\n\n   \n\n",
    }
    for name, data in special.items():
        with open(os.path.join(ROOT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
