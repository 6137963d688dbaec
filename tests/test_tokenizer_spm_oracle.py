"""test_tokenizer_spm_oracle: hafl's encoding with collapse_spaces against SentencePiece itself.

base3M was pretrained on ids from SentencePiece's encode with tok4096.model (trained with the
default normaliser settings: identity rules, remove_extra_whitespaces on). hafl encodes with
tok4096.bin, llama2.c's way, after hafl_tokset_collapse_spaces. This test requires the two to
give the same ids: for a hard set of texts written here (runs of spaces, leading and trailing
spaces, tabs, newlines, spaces around newlines, digits, punctuation, latin-1 letters, U+00A0,
which must not be collapsed), and for the first DOCS training documents of 20 Newsgroups, cleaned
as hafl_tokset cleans them, where the row of a tokset built with collapse_spaces must also be the
first ids of SentencePiece's encoding. hafl's ids come from the helper test_tokenizer_spm
(--encode); SentencePiece's are BOS (id 1) + SentencePieceProcessor(tok4096.model).encode(text).

To show the check has teeth it also requires that, without the normalisation, hafl disagrees
with SentencePiece on every hard text that has spaces to remove.

Texts in KNOWN_DIFFERENT are encoded differently for reasons other than spaces; they are left out
of the required-equal set and only reported.

Exits 77 (ctest skip) when sentencepiece (Debian package python3-sentencepiece) or an asset is
missing.

Usage: test_tokenizer_spm_oracle.py TEST_TOKENIZER_SPM_EXECUTABLE [DOCS]
"""
import os
import subprocess
import sys
import tempfile

try:
    import sentencepiece as spm
except ImportError:
    print("SKIP: sentencepiece is not installed for %s (Debian package python3-sentencepiece)"
          % sys.executable)
    sys.exit(77)

ROW_TOKENS = 256  # the helper's tokset T

# name -> (text, has spaces that remove_extra_whitespaces removes)
HARD = [
    ("single-spaces", "plain text with single spaces", False),
    ("runs", "hello   world  again    and     again", True),
    ("leading", "   leading spaces", True),
    ("trailing", "trailing spaces   ", True),
    ("leading-trailing-one", " one ", True),
    ("only-spaces", "      ", True),
    ("empty", "", False),
    ("tabs", "col1\tcol2\t\tcol3 \t col4", False),
    ("tab-edges", "\tleading tab and trailing tab\t", False),
    ("tab-space-edges", " \t x \t ", True),
    ("newlines", "line one\nline two\n\nline four\n", False),
    ("newline-edges", "\n\nstarts and ends with newlines\n\n", False),
    ("spaces-around-newlines", "end of line   \n   start of line", True),
    ("space-newline-space", "a \n b \n\n c", False),
    ("crlf", "windows line\r\nnext  line\r\n", True),
    ("digits", "In 1993, 42 people paid $1,234.56 (about 3.5%) for  1000000 items", True),
    ("punctuation", "Hello, world! What's up? (yes) [no] {maybe} -- a/b\\c @#%^&*_+=|~`<> ;:", False),
    ("latin1", "caf\u00e9 na\u00efve \u00fcber stra\u00dfe \u00c6r\u00f8sk\u00f8bing fa\u00e7ade "
               "\u00a35 \u00bfqu\u00e9? se\u00f1or \u00a9 \u00b0C \u00bd", False),
    ("latin1-runs", "  \u00e9t\u00e9   \u00fc  \u00df  ", True),
    ("nbsp", "a\u00a0b", False),
    ("nbsp-runs", "a\u00a0\u00a0\u00a0b", False),
    ("nbsp-between-spaces", "a \u00a0 b  \u00a0\u00a0  c", True),
    ("nbsp-edges", "\u00a0\u00a0lead and trail\u00a0\u00a0", False),
    ("nbsp-inside-edges", "  \u00a0 x \u00a0  ", True),
    ("mail", "From: john.doe@cs.cmu.edu (John  Doe)\nSubject: Re:  [ILUG]  Smalltalk\n\n"
             "> quoted   text\n-- \nsig  ", True),
    ("code", "int main(void)\n{\n    return  0;\n}\n", True),
    ("table", "Name      Age   City\nBob       42    Paris\n", True),
    ("controls", "bell\x07 and  esc\x1b[0m form\x0cfeed", True),
    ("space-newline-space-only", " \n ", True),
    ("long-run", "a" + " " * 300 + "b", True),
    ("latin1-all", "".join(chr(c) for c in range(32, 256)), True),
    ("lower-one-eighth-block", "a\u2581b \u2581x", False),
]

# name -> reason: texts hafl and SentencePiece encode differently for reasons other than spaces.
KNOWN_DIFFERENT = {
    "lower-one-eighth-block":
        "SentencePiece escapes each space as U+2581 before encoding, so a U+2581 in the text is "
        "a space to it (piece '\u2581b'); tok4096.bin spells that marker ' ', so to hafl U+2581 "
        "is an unknown character (bytes e2 96 81). Not in latin-1, so never in 20 Newsgroups",
}


def run_helper(helper, texts, docs, tmp):
    src = os.path.join(tmp, "in.txt")
    dst = os.path.join(tmp, "out.txt")
    with open(src, "wb") as f:
        for name, text, _ in texts:
            data = text.encode("utf-8")
            f.write(b"%s %d\n" % (name.encode(), len(data)) + data + b"\n")
    run = subprocess.run([helper, "--encode", src, dst, str(docs)], capture_output=True,
                         text=True)
    if run.returncode == 77:
        print(run.stdout.strip())
        sys.exit(77)
    if run.returncode != 0:
        print("helper failed (%d): %s %s" % (run.returncode, run.stdout, run.stderr))
        sys.exit(1)
    model = run.stdout.strip().splitlines()[-1]
    assert model.startswith("model "), run.stdout
    records = []
    with open(dst, "rb") as f:
        data = f.read()
    at = 0

    def line():
        nonlocal at
        end = data.index(b"\n", at)
        out = data[at:end]
        at = end + 1
        return out

    def ids(tag):
        fields = line().split()
        assert fields[0] == tag.encode() and int(fields[1]) == len(fields) - 2, fields[:2]
        return [int(x) for x in fields[2:]]

    while at < len(data):
        name, length = line().split()
        text = data[at:at + int(length)].decode("utf-8")
        at += int(length)
        assert data[at:at + 1] == b"\n"
        at += 1
        records.append((name.decode(), text, ids("ids"), ids("raw"), ids("row")))
    return model[len("model "):], records


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def main():
    helper = sys.argv[1]
    docs = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    with tempfile.TemporaryDirectory() as tmp:
        model, records = run_helper(helper, HARD, docs, tmp)
    sp = spm.SentencePieceProcessor(model_file=model)
    assert sp.vocab_size() == 4096 and sp.bos_id() == 1, (sp.vocab_size(), sp.bos_id())
    assert len(records) == len(HARD) + docs, len(records)
    spaced = {name for name, _, has_runs in HARD if has_runs}

    failures, known, toothless = [], [], []
    raw_differs_docs = 0
    for k, (name, text, ours, raw, row) in enumerate(records):
        theirs = [1] + sp.encode(text)
        is_doc = k >= len(HARD)
        if ours != theirs:
            i = first_difference(ours, theirs)
            what = ("%s: hafl and SentencePiece differ at id %d: hafl %s, SentencePiece %s "
                    "(pieces %s against %s) in %r"
                    % (name, i, ours[i:i + 6], theirs[i:i + 6],
                       [sp.id_to_piece(x) for x in ours[i:i + 6]],
                       [sp.id_to_piece(x) for x in theirs[i:i + 6]], text[:120]))
            if name in KNOWN_DIFFERENT:
                known.append((name, what))
            else:
                failures.append(what)
        if is_doc:
            want_row = theirs[:ROW_TOKENS]
            if row != want_row:
                i = first_difference(row, want_row)
                failures.append("%s: tokset row differs from SentencePiece at %d: %s against %s"
                                % (name, i, row[i:i + 6], want_row[i:i + 6]))
            raw_differs_docs += raw != theirs
        elif name in spaced and raw == theirs:
            toothless.append(name)
        elif name not in spaced and raw != ours:
            failures.append("%s: normalisation changed a text with no spaces to remove" % name)

    for name, what in known:
        print("known difference, left out: %s\n  reason: %s" % (what, KNOWN_DIFFERENT[name]))
    for name in sorted(set(KNOWN_DIFFERENT) - {name for name, _ in known}):
        print("note: %s is listed as a known difference but now agrees" % name)
    for name in toothless:
        failures.append("%s: hafl agrees with SentencePiece even without normalising, so this "
                        "text does not test the normaliser" % name)
    if failures:
        for what in failures:
            print("FAIL " + what)
        sys.exit(1)
    print("tokenizer_spm_oracle: %d hard texts and %d documents encode as SentencePiece does "
          "(%d known difference(s) left out); without the normalisation %d of %d hard texts and "
          "%d of %d documents would differ"
          % (len(HARD) - len(KNOWN_DIFFERENT), docs, len(known), len(spaced), len(HARD),
             raw_differs_docs, docs))


if __name__ == "__main__":
    main()
