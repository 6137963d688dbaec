/*  hafl_clean: scikit-learn's 20 Newsgroups cleaning rules on latin-1 bytes (see hafl_clean.h).

    Each rule is written against the Python it reproduces, line by line in the comments, because
    "exactly sklearn" is the contract: the subtle cases are a missing blank line (header gives
    empty), a separator on the first line (footer gives the text back unstripped) and quote
    markers that count only at the very start of a line.
*/
#include "hafl_clean.h"

#include <string.h>

bool hafl_clean_is_space(unsigned char c)
{
    //  CPython's whitespace table for U+0000..U+00FF.
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0;
}

size_t hafl_clean_header(char *text, size_t len)
{
    //  _before, _blankline, after = text.partition("\n\n"); return after
    const char *blank = memmem(text, len, "\n\n", 2);
    if (!blank)
        return 0;
    size_t start = (size_t)(blank - text) + 2;
    memmove(text, text + start, len - start);
    return len - start;
}

//  line.strip().strip("-") == "": after trimming whitespace at both ends only hyphens remain.
static bool s_is_separator(const char *line, size_t len)
{
    size_t a = 0, b = len;
    while (a < b && hafl_clean_is_space((unsigned char)line[a]))
        a++;
    while (b > a && hafl_clean_is_space((unsigned char)line[b - 1]))
        b--;
    for (size_t i = a; i < b; i++)
        if (line[i] != '-')
            return false;
    return true;
}

size_t hafl_clean_footer(char *text, size_t len)
{
    //  lines = text.strip().split("\n"): the stripped span is [s, e).
    size_t s = 0, e = len;
    while (s < e && hafl_clean_is_space((unsigned char)text[s]))
        s++;
    while (e > s && hafl_clean_is_space((unsigned char)text[e - 1]))
        e--;
    //  for line_num in range(len(lines) - 1, -1, -1): break at the first separator line.
    //  Line k spans [ls, le); it is line 0 exactly when ls == s.
    size_t le = e;
    for (;;) {
        const char *nl = le > s ? memrchr(text + s, '\n', le - s) : NULL;
        size_t ls = nl ? (size_t)(nl - text) + 1 : s;
        if (s_is_separator(text + ls, le - ls)) {
            if (ls == s)
                return len; //  line_num == 0: the text unchanged
            //  "\n".join(lines[:line_num]): the stripped span up to the "\n" before this line.
            size_t out = ls - 1 - s;
            memmove(text, text + s, out);
            return out;
        }
        if (ls == s)
            return len; //  no separator: the loop ends with line_num == 0
        le = ls - 1;
    }
}

static bool s_starts_with(const char *line, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(line, prefix, n) == 0;
}

//  _QUOTE_RE.search(line) for
//  (writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)
static bool s_is_quote(const char *line, size_t len)
{
    static const char *anywhere[] = {"writes in", "writes:", "wrote:", "says:", "said:"};
    static const char *at_start[] = {"In article", "Quoted from", "|", ">"};
    for (size_t i = 0; i < sizeof at_start / sizeof at_start[0]; i++)
        if (s_starts_with(line, len, at_start[i]))
            return true;
    for (size_t i = 0; i < sizeof anywhere / sizeof anywhere[0]; i++)
        if (memmem(line, len, anywhere[i], strlen(anywhere[i])))
            return true;
    return false;
}

size_t hafl_clean_quotes(char *text, size_t len)
{
    //  "\n".join(line for line in text.split("\n") if not _QUOTE_RE.search(line))
    //  The write position never passes the read position, so this works in place.
    size_t pos = 0, out = 0;
    bool first = true;
    for (;;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        if (!s_is_quote(text + pos, end - pos)) {
            if (!first)
                text[out++] = '\n';
            memmove(text + out, text + pos, end - pos);
            out += end - pos;
            first = false;
        }
        if (!nl)
            break;
        pos = end + 1;
    }
    return out;
}

size_t hafl_clean_apply(char *text, size_t len, unsigned rules)
{
    if (rules & HAFL_CLEAN_HEADERS)
        len = hafl_clean_header(text, len);
    if (rules & HAFL_CLEAN_FOOTERS)
        len = hafl_clean_footer(text, len);
    if (rules & HAFL_CLEAN_QUOTES)
        len = hafl_clean_quotes(text, len);
    return len;
}

size_t hafl_clean_latin1_to_utf8(const char *text, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x80)
            out[n++] = (char)c;
        else {
            out[n++] = (char)(0xC0 | (c >> 6));
            out[n++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return n;
}
