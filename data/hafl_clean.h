/*  hafl_clean: scikit-learn's 20 Newsgroups cleaning, remove=('headers','footers','quotes').

    The three rules of sklearn.datasets.fetch_20newsgroups, reproduced byte for byte on latin-1
    text (one byte = one code point, so Python's str operations map onto bytes):
      header  text.partition("\n\n")[2]: everything after the first blank line; a text without
              "\n\n" becomes empty.
      footer  lines = text.strip().split("\n"); scanning from the last line up, stop at the first
              line whose strip().strip("-") is empty (blank or only hyphens); if that index is
              > 0 the result is lines[:index] joined by "\n", otherwise the text unchanged
              (unstripped).
      quotes  drop every line (split on "\n") that contains "writes in", "writes:", "wrote:",
              "says:" or "said:" anywhere, or starts with "In article", "Quoted from", "|" or
              ">"; the kept lines are joined by "\n". Case-sensitive; "\r" is an ordinary byte.
    sklearn applies them in that order: header, footer, quotes. Whitespace is Python's
    str.isspace() on latin-1 code points: 0x09-0x0D, 0x1C-0x1F, 0x20, 0x85, 0xA0 (not what C's
    isspace() says for the upper half or the separators).

    Every function works in place: the result is never longer than the input and is written to
    the start of the same buffer; the new length is returned. Text may hold NUL bytes.
*/
#ifndef HAFL_CLEAN_H
#define HAFL_CLEAN_H

#include <stdbool.h>
#include <stddef.h>

//  Bumped whenever any rule's output changes; part of every tokenised-set cache digest.
#define HAFL_CLEAN_VERSION 1

enum {
    HAFL_CLEAN_HEADERS = 1,
    HAFL_CLEAN_FOOTERS = 2,
    HAFL_CLEAN_QUOTES = 4,
    HAFL_CLEAN_ALL = 7,
};

//  Python's str.isspace() for the latin-1 code point c.
bool hafl_clean_is_space(unsigned char c);

//  The single rules, in place on text[0..len); each returns the new length.
size_t hafl_clean_header(char *text, size_t len);
size_t hafl_clean_footer(char *text, size_t len);
size_t hafl_clean_quotes(char *text, size_t len);

//  The rules selected by the HAFL_CLEAN_* bits in `rules`, in sklearn's order.
size_t hafl_clean_apply(char *text, size_t len, unsigned rules);

//  Latin-1 to UTF-8: out must hold 2 * len bytes; returns the bytes written (no terminator).
size_t hafl_clean_latin1_to_utf8(const char *text, size_t len, char *out);

#endif
