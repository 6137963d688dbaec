/*  hafl_bpe: byte-level BPE, the tokenizer of GGUF files with `tokenizer.ggml.model = gpt2`
    (GPT-2, Llama 3, Qwen2 and most BPE models converted by llama.cpp). hafl_tokenizer loads it
    and dispatches to it; callers normally use hafl_tokenizer.h.

    Metadata read (all from an opened hafl_gguf reader; every count is checked):
      tokenizer.ggml.tokens      array of vocab_size strings
      tokenizer.ggml.token_type  optional array of vocab_size integers in 1..6 (llama.cpp's
                                 normal, unknown, control, user-defined, unused, byte); absent
                                 means every token is normal
      tokenizer.ggml.merges      array of strings "A B", the merge of rank = its index
      tokenizer.ggml.pre         optional string choosing the pre-tokenizer (absent: "default")

    Spelling. A normal token (type 1) is spelled in GPT-2's byte-to-unicode alphabet: the bytes
    '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for the code point of the same value, and the other
    68 bytes, in increasing order, for U+0100..U+0143 (so a space is "Ġ", U+0120). Each normal
    token must be non-empty valid UTF-8 of such characters; no two normal tokens may spell the
    same bytes; each of the 256 single bytes must be a normal token. Tokens of the other types
    (control tokens such as "<|endoftext|>", user-defined, unknown, unused, byte) are text taken
    verbatim: they decode to their own bytes and encoding never produces them.

    Merges. Each entry is two normal tokens separated by exactly one space, whose concatenation
    is also a normal token (as Hugging Face's loader requires); a pair may appear only once. At
    most HAFL_BPE_MAX_MERGES entries. A bad file fails with one line naming the key, the entry
    and why ("PATH: key 'tokenizer.ggml.merges': merge 7 ('a b'): 'b' is not a normal token").

    Pre-tokenizers (`tokenizer.ggml.pre`; another value is refused naming the key):
      llama-bpe, llama3, llama-v3  Llama 3's pattern (digits in groups of up to three), and a
                                   pre-token that is itself a normal token is emitted whole
                                   before any merging (Hugging Face's ignore_merges, which
                                   llama.cpp also applies for Llama 3)
      qwen2                        Qwen2's pattern (Llama 3's with single digits)
      gpt-2, default               GPT-2's pattern (lower-case contractions only)
    The patterns are the ones llama.cpp and Hugging Face use, run by PCRE2 in UTF and UCP mode
    (\p{L} letters, \p{N} numbers). Whitespace is Unicode's White_Space property, spelled as the
    class [\t-\r\x{85}\p{Z}], which is what Hugging Face's tokenizers (Oniguruma), tiktoken and
    llama.cpp match (PCRE2's own \s adds U+180E; JavaScript's \s drops U+0085 and adds U+FEFF).
    The contraction alternatives spell both cases explicitly ('[sS]), as llama.cpp does, so no
    Unicode case folding (U+017F "ſ" for "s") applies.

    Encoding len bytes of text:
      1. The text is cut into pre-tokens by successive leftmost matches of the pattern (text
         between matches, which the patterns above never leave, would be a pre-token too). The
         pattern sees valid UTF-8 only: a byte that does not start a valid UTF-8 sequence (no
         overlong forms, surrogates or code points above U+10FFFF) is a pre-token of its own and
         ends the text the pattern sees on its left; matching resumes after it.
      2. With ignore_merges, a pre-token whose bytes are a normal token becomes that token.
      3. Otherwise each byte starts as its single-byte token and, repeatedly, the adjacent pair
         with the lowest merge rank (the leftmost among equal ranks) becomes its merged token,
         until no adjacent pair is a merge. This is the order of Hugging Face's BPE model and of
         llama.cpp's.
    Each output token covers at least one byte, so at most len ids come out. Matching has no
    backtracking limit (the patterns' work is linear), so a whitespace run of any length is cut
    as the pattern says rather than failing. The text is not
    normalised: Qwen's Hugging Face tokenizer applies NFC first, llama.cpp does not; give NFC
    text to get Hugging Face's ids for Qwen. Control and user-defined token texts inside the
    input are ordinary text (no special-token parsing).

    A hafl_bpe_t is immutable after _new, so threads may share one; each call of encode or split
    allocates its own scratch.
*/
#ifndef HAFL_BPE_H
#define HAFL_BPE_H

#include "hafl_gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HAFL_BPE_MAX_MERGES (1 << 22)

//  llama.cpp's token types (tokenizer.ggml.token_type).
enum {
    HAFL_BPE_TYPE_NORMAL = 1,
    HAFL_BPE_TYPE_UNKNOWN = 2,
    HAFL_BPE_TYPE_CONTROL = 3,
    HAFL_BPE_TYPE_USER_DEFINED = 4,
    HAFL_BPE_TYPE_UNUSED = 5,
    HAFL_BPE_TYPE_BYTE = 6
};

typedef struct _hafl_bpe_t hafl_bpe_t;

//  Build the tokenizer from gguf's metadata (the reader may be destroyed afterwards: nothing
//  is borrowed). tokenizer.ggml.tokens must have exactly vocab_size entries. Returns the
//  tokenizer (caller owns) or NULL with one line in err, prefixed by the reader's path.
hafl_bpe_t *hafl_bpe_new(const hafl_gguf_t *gguf, int vocab_size, char *err, size_t errlen);
void hafl_bpe_destroy(hafl_bpe_t **self_p);

//  The pre-tokenizer's canonical name: "llama-bpe", "qwen2" or "gpt-2".
const char *hafl_bpe_pre(const hafl_bpe_t *self);
//  Token type of id (HAFL_BPE_TYPE_*), or 0 when out of range.
int hafl_bpe_type(const hafl_bpe_t *self, int32_t id);
//  SHA-256 of what decides an encoding besides the token spellings: the pre-tokenizer, the
//  token types and the merges with their ranks. Equal for tokenizers that encode alike from
//  the same vocabulary; caches keyed by a tokenizer include it.
void hafl_bpe_rules_digest(const hafl_bpe_t *self, uint8_t digest[32]);

//  Encode len bytes at text (any bytes; NUL is an ordinary byte) into tokens[capacity];
//  *n_tokens receives the count. Returns 0, or -1 when capacity < len, on no memory, or when
//  the regex engine fails (nothing is written to *n_tokens then).
int hafl_bpe_encode(const hafl_bpe_t *self, const char *text, size_t len, int32_t *tokens,
                    size_t capacity, size_t *n_tokens);

//  Step 1 alone: the end offset of each pre-token of len bytes at text, in order, into
//  ends[capacity] (capacity >= len suffices); *n receives the count. 0, or -1 as for encode.
int hafl_bpe_split(const hafl_bpe_t *self, const char *text, size_t len, size_t *ends,
                   size_t capacity, size_t *n);

//  The bytes id stands for, NUL-terminated (a byte 0 inside is possible: *len, when not NULL,
//  receives the true length), owned by the tokenizer; NULL when id is out of range.
const char *hafl_bpe_decode(const hafl_bpe_t *self, int32_t id, size_t *len);

#endif
