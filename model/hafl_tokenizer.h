/*  hafl_tokenizer: a llama2.c / sentencepiece BPE tokenizer (encode and decode).

    File format (llama2.c tokenizer.bin): int32 max_token_length, then vocab_size records of
    float32 score, int32 len, len bytes (the piece, no terminator). The vocab size is not in the
    file; it comes from the model header and is passed to load. Loading checks every length
    against max_token_length and the bytes left in the file, refuses pieces with NUL bytes, non
    finite scores and trailing bytes, and fails with a one-line reason naming the file.

    A file that starts with "GGUF" is a model file carrying its tokenizer in its metadata (read
    through hafl_gguf). Only `tokenizer.ggml.model = llama` (SentencePiece) is supported; other
    models are refused naming the key. `tokenizer.ggml.tokens` and `.scores` (and `.token_type`
    when present) must have vocab_size entries; the pieces become what llama2.c's tokenizer
    export writes for the same SentencePiece model (U+2581 as a space, BOS and EOS as "\n<s>\n"
    and "\n</s>\n"), so encoding and decoding equal the .bin's. What the code below hard-codes
    must hold: unknown, BOS and EOS ids (when given) 0, 1 and 2, add_bos_token (when given) true,
    add_eos_token (when given) false, and ids 3..258 the byte pieces <0x00>..<0xFF> (of token
    type byte when types are given); a file that differs is refused naming the key.

    Encoding follows llama2.c's encode exactly:
      1. optional BOS (id 1); then, unless the text is empty, the id of the piece " " (the
         sentencepiece dummy prefix);
      2. the text is cut into UTF-8 code points (a lead byte plus up to three continuation
         bytes); a code point that is a piece becomes its id, otherwise each of its bytes b
         becomes the byte-fallback id b + 3;
      3. repeatedly, among all adjacent pairs whose concatenated string is a piece, the pair
         whose piece has the highest score (the leftmost on ties; only scores above -1e10
         count) is replaced by that piece, until no pair merges;
      4. optional EOS (id 2).
    The result equals llama2.c's O(n^2) loop; this implementation uses a heap so long documents
    encode in O(n log n). Pieces are looked up in a sorted copy of the vocab by bsearch; when two
    ids share a string the lowest id wins. Text is raw bytes: give UTF-8 (convert latin-1 first).

    Decoding a token given the previous one returns its piece, except that after BOS a leading
    space is dropped, and a piece spelled "<0xHH>" stands for the single raw byte 0xHH.

    Typical use for turning a document into ids:
        size_t cap = hafl_tokenizer_encode_capacity (strlen (text));
        int32_t *ids = malloc (cap * sizeof (int32_t));
        size_t n;
        if (hafl_tokenizer_encode (tok, text, true, false, ids, cap, &n) != 0) ...

    A tokenizer is immutable after load, so threads may share one.
*/
#ifndef HAFL_TOKENIZER_H
#define HAFL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { HAFL_TOKEN_UNK = 0, HAFL_TOKEN_BOS = 1, HAFL_TOKEN_EOS = 2, HAFL_TOKEN_BYTE0 = 3 };

typedef struct _hafl_tokenizer_t hafl_tokenizer_t;

//  Load a tokenizer of exactly vocab_size pieces (>= 259, so every byte has a fallback id).
//  Returns the tokenizer (caller owns) or NULL with a reason naming the file in err.
hafl_tokenizer_t *hafl_tokenizer_load(const char *path, int vocab_size, char *err, size_t errlen);
void hafl_tokenizer_destroy(hafl_tokenizer_t **self_p);

int hafl_tokenizer_vocab_size(const hafl_tokenizer_t *self);
//  The raw piece of id (NUL-terminated, owned by the tokenizer), or NULL when out of range.
const char *hafl_tokenizer_piece(const hafl_tokenizer_t *self, int32_t id);
//  Piece score, or 0 when out of range.
float hafl_tokenizer_score(const hafl_tokenizer_t *self, int32_t id);
//  Id of the piece exactly equal to the len bytes at str, or -1.
int32_t hafl_tokenizer_lookup(const hafl_tokenizer_t *self, const char *str, size_t len);

//  Ids that encoding text_len bytes can produce at most (BOS, dummy prefix, one per byte, EOS).
static inline size_t hafl_tokenizer_encode_capacity(size_t text_len)
{
    return text_len + 3;
}

//  Encode the NUL-terminated text into tokens[capacity]; *n_tokens receives the count.
//  Returns 0, or -1 when capacity < hafl_tokenizer_encode_capacity (strlen (text)) or on no
//  memory (nothing is written to *n_tokens then).
int hafl_tokenizer_encode(const hafl_tokenizer_t *self, const char *text, bool bos, bool eos,
                          int32_t *tokens, size_t capacity, size_t *n_tokens);

//  The text of token after prev_token (see above); owned by the tokenizer. NULL if token is out
//  of range. The result may be a one-byte string holding a raw byte, or empty for byte 0.
const char *hafl_tokenizer_decode(const hafl_tokenizer_t *self, int32_t prev_token, int32_t token);

//  Print a decoded piece the way llama2.c does: nothing for NULL or empty pieces, nothing for a
//  single byte that is neither printable ASCII nor whitespace (a lone raw byte such as part of
//  a UTF-8 sequence or a control code), the piece as is otherwise.
void hafl_tokenizer_print_piece(FILE *out, const char *piece);

#endif
