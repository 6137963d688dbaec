"""test_data_sklearn: hafl's cleaning against scikit-learn's own functions on the real corpus.

Runs the data_newsgroups test executable with --dump (every document of 20news-bydate cleaned
by hafl_clean, in hafl's corpus order), cleans the same archive with scikit-learn's
strip_newsgroup_header, strip_newsgroup_footer and strip_newsgroup_quoting in the order
fetch_20newsgroups applies them (text decoded as latin-1), and requires byte-identical output.
Exits 77 (ctest skip) when scikit-learn or the asset is not available.

Usage: test_data_sklearn.py TEST_DATA_NEWSGROUPS_EXECUTABLE
"""
import os
import subprocess
import sys
import tarfile
import tempfile

try:
    from sklearn.datasets._twenty_newsgroups import (
        strip_newsgroup_footer,
        strip_newsgroup_header,
        strip_newsgroup_quoting,
    )
except ImportError:
    print("SKIP: scikit-learn is not installed for %s (Debian package python3-sklearn)"
          % sys.executable)
    sys.exit(77)

PARTS = ["20news-bydate-train", "20news-bydate-test"]


def reference(archive):
    """The cleaned corpus in hafl's order: part, label (sorted groups), numeric id."""
    docs = {}
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            if not member.isfile():
                continue
            part, group, name = member.name.lstrip("./").split("/")
            docs[(part, group, int(name))] = tf.extractfile(member).read()
    groups = sorted({group for (_, group, _) in docs})
    out = bytearray()
    for p, part in enumerate(PARTS):
        keys = sorted((k for k in docs if k[0] == part),
                      key=lambda k: (groups.index(k[1]), k[2]))
        for key in keys:
            text = docs[key].decode("latin1")
            text = strip_newsgroup_header(text)
            text = strip_newsgroup_footer(text)
            text = strip_newsgroup_quoting(text)
            body = text.encode("latin1")
            out += b"%d %s %d %d\n" % (p, key[1].encode(), key[2], len(body))
            out += body + b"\n"
    return bytes(out)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "hafl.txt")
        run = subprocess.run([sys.argv[1], "--dump", dump], capture_output=True, text=True)
        if run.returncode == 77:
            print(run.stdout.strip())
            sys.exit(77)
        if run.returncode != 0:
            print("dump failed: %s %s" % (run.stdout, run.stderr))
            sys.exit(1)
        archive = run.stdout.strip().splitlines()[-1]
        with open(dump, "rb") as f:
            ours = f.read()
    theirs = reference(archive)
    if ours != theirs:
        at = next(i for i in range(min(len(ours), len(theirs))) if ours[i] != theirs[i]) \
            if ours[:min(len(ours), len(theirs))] != theirs[:min(len(ours), len(theirs))] \
            else min(len(ours), len(theirs))
        line = ours.rfind(b"\n", 0, at)
        print("MISMATCH at byte %d (hafl %d bytes, sklearn %d bytes) near: %r"
              % (at, len(ours), len(theirs), ours[max(0, line - 200):at + 40]))
        sys.exit(1)
    print("data_sklearn: %d bytes of cleaned corpus identical to scikit-learn" % len(ours))


if __name__ == "__main__":
    main()
