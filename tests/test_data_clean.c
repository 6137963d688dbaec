/*  test_data_clean: scikit-learn's 20 Newsgroups cleaning rules on crafted documents.

    The expected outputs were produced by scikit-learn's own strip_newsgroup_header,
    strip_newsgroup_footer and strip_newsgroup_quoting on the same inputs (decoded as latin-1),
    one case per rule and edge: no blank line, CRLF, a separator on the first line, whitespace
    that only Python counts as such, markers not at the start of a line, and the rule order.
*/
#include "hafl_clean.h"
#include "hafl_test.h"

#include <stdint.h>
#include <string.h>

typedef struct {
    unsigned rules;
    const char *input;
    const char *expected;
    const char *what;
} s_case_t;

static const s_case_t s_cases[] = {
    {HAFL_CLEAN_HEADERS, "From: a\nSubject: b\n\nBody line\n", "Body line\n",
     "headers end at the first blank line"},
    {HAFL_CLEAN_HEADERS, "no blank line here\nstill header", "", "no blank line: nothing is left"},
    {HAFL_CLEAN_HEADERS, "\n\nstarts blank", "starts blank", "blank line first"},
    {HAFL_CLEAN_HEADERS, "a\r\n\r\nb", "", "CRLF has no \\n\\n: nothing is left"},
    {HAFL_CLEAN_HEADERS, "a\n\n\n\nb", "\n\nb", "only the first blank line goes"},
    {HAFL_CLEAN_HEADERS, "a\n \nb", "", "a line of spaces is not blank"},
    {HAFL_CLEAN_HEADERS, "", "", "empty"},
    {HAFL_CLEAN_FOOTERS, "body\nmore\n\n-- \nJohn Doe\n", "body\nmore\n", "signature after '-- '"},
    {HAFL_CLEAN_FOOTERS, "-- \nsig", "-- \nsig", "separator on the first line: text unchanged"},
    {HAFL_CLEAN_FOOTERS, "a\nb\nc", "a\nb\nc", "no separator: unchanged"},
    {HAFL_CLEAN_FOOTERS, "  \n\nbody\n\nsig\n\n  ", "body", "strip both ends first"},
    {HAFL_CLEAN_FOOTERS, "text\n-----\nsig", "text", "line of hyphens"},
    {HAFL_CLEAN_FOOTERS, "text\n  ---  \nsig", "text", "hyphens inside spaces"},
    {HAFL_CLEAN_FOOTERS, "text\n- -\nsig", "text\n- -\nsig",
     "hyphen space hyphen is not a separator"},
    {HAFL_CLEAN_FOOTERS,
     "text\n\xa0"
     "\nsig",
     "text", "NBSP counts as whitespace"},
    {HAFL_CLEAN_FOOTERS,
     "text\n\x1c"
     "\x1d"
     "\nsig",
     "text", "information separators count as whitespace"},
    {HAFL_CLEAN_FOOTERS,
     "text\n\xad"
     "\nsig",
     "text\n\xad"
     "\nsig",
     "soft hyphen is not whitespace"},
    {HAFL_CLEAN_FOOTERS, "   \n ", "   \n ", "only whitespace: unchanged"},
    {HAFL_CLEAN_FOOTERS,
     "body\n\nsig\x85"
     "",
     "body", "NEL stripped at the end"},
    {HAFL_CLEAN_FOOTERS, "body\r\n\r\nsig\r\n", "body\r", "CRLF: a lone \\r line is blank"},
    {HAFL_CLEAN_FOOTERS, "a\nb\n--", "a\nb", "separator as the last line"},
    {HAFL_CLEAN_FOOTERS, "a\n\nb\n\nc", "a\n\nb", "the last separator wins"},
    {HAFL_CLEAN_FOOTERS, "\n\na\n\nb", "a", "separator right after stripped start"},
    {HAFL_CLEAN_FOOTERS, "", "", "empty"},
    {HAFL_CLEAN_QUOTES, "> quoted\nkept\n| pipe\n", "kept\n", "> and | at line start"},
    {HAFL_CLEAN_QUOTES, "  > indented\n\t| tab\n", "  > indented\n\t| tab\n",
     "indented markers are kept"},
    {HAFL_CLEAN_QUOTES, "foo writes:\nbar", "bar", "writes: anywhere"},
    {HAFL_CLEAN_QUOTES, "xIn article <1@a> y\nIn article <2@b>\nok", "xIn article <1@a> y\nok",
     "In article only at line start"},
    {HAFL_CLEAN_QUOTES, "He said: hi\nShe says: yo\nwrote: x\nwrites in y\nQuoted from z\nok", "ok",
     "every marker"},
    {HAFL_CLEAN_QUOTES, "in article lower\nWrites: upper\nsaid :\n",
     "in article lower\nWrites: upper\nsaid :\n", "case and spacing matter"},
    {HAFL_CLEAN_QUOTES, "\r> crlf\n> a\r\nb\r\n", "\r> crlf\nb\r\n",
     "a leading \\r hides the marker"},
    {HAFL_CLEAN_QUOTES, "unsaid: x\nkeep", "keep", "marker inside a word"},
    {HAFL_CLEAN_QUOTES, ">\n>\n>", "", "all lines dropped"},
    {HAFL_CLEAN_QUOTES, "\n\n", "\n\n", "empty lines stay"},
    {HAFL_CLEAN_QUOTES, "", "", "empty"},
    {HAFL_CLEAN_ALL, "From: x\n\nIn article <a>, b writes:\n> q\nreal text\n\n-- \nsig",
     "real text\n", "all three rules"},
    {HAFL_CLEAN_ALL, "Subject: s\n\nline one\n> quoted\n\nline two\n-- \nJ", "line one\n\nline two",
     "footer before quotes"},
    {HAFL_CLEAN_ALL, "Subject: s\n\n> a\n\n> b", "", "quote lines around the separator"},
    {HAFL_CLEAN_ALL, "H: h\n\nbody\n\n> x", "body", "footer before quotes changes the result"},
    {HAFL_CLEAN_ALL, "Subject: only headers", "", "no body"},
    {HAFL_CLEAN_ALL,
     "H: 1\n\n\xe9"
     "t\xe9"
     "\n\n--\n\xa9"
     " me",
     "\xe9"
     "t\xe9"
     "\n",
     "latin-1 bytes"},
};

static void s_check_case(const s_case_t *c)
{
    size_t len = strlen(c->input);
    char *text = malloc(len + 1);
    CHECK(text);
    memcpy(text, c->input, len + 1);
    size_t out = hafl_clean_apply(text, len, c->rules);
    CHECKF(out == strlen(c->expected) && memcmp(text, c->expected, out) == 0,
           "rules %u, %s: got %zu bytes '%.*s'", c->rules, c->what, out, (int)out, text);
    free(text);
}

//  Python's str.isspace() on U+0000..U+00FF is true exactly for these.
static void s_check_space(void)
{
    static const unsigned char spaces[] = {9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 133, 160};
    for (int c = 0; c < 256; c++) {
        bool want = memchr(spaces, c, sizeof spaces) != NULL;
        CHECKF(hafl_clean_is_space((unsigned char)c) == want, "byte 0x%02x", c);
    }
}

static void s_check_utf8(void)
{
    const char latin1[] = "a\xe9\x80\xff\x7f";
    char out[2 * sizeof latin1];
    size_t n = hafl_clean_latin1_to_utf8(latin1, 5, out);
    CHECK(n == 8 && memcmp(out, "a\xc3\xa9\xc2\x80\xc3\xbf\x7f", 8) == 0);
}

//  NUL bytes are ordinary bytes to every rule.
static void s_check_nul(void)
{
    char text[] = "h\0x\n\nbody\0one\n> q\0\nend";
    size_t len = sizeof text - 1;
    size_t out = hafl_clean_apply(text, len, HAFL_CLEAN_ALL);
    CHECK(out == 12 && memcmp(text, "body\0one\nend", 12) == 0);
}

//  The rules compose: each single rule applied in sklearn's order equals apply(ALL).
static void s_check_composition(void)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        size_t len = strlen(s_cases[i].input);
        char *a = malloc(len + 1), *b = malloc(len + 1);
        CHECK(a && b);
        memcpy(a, s_cases[i].input, len);
        memcpy(b, s_cases[i].input, len);
        size_t na = hafl_clean_apply(a, len, HAFL_CLEAN_ALL);
        size_t nb = hafl_clean_quotes(b, hafl_clean_footer(b, hafl_clean_header(b, len)));
        CHECK(na == nb && memcmp(a, b, na) == 0);
        free(a);
        free(b);
    }
}

int main(void)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++)
        s_check_case(&s_cases[i]);
    s_check_space();
    s_check_utf8();
    s_check_nul();
    s_check_composition();
    printf("data_clean: %zu crafted cases ok\n", sizeof s_cases / sizeof s_cases[0]);
    return 0;
}
