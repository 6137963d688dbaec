/*  hafl_tokenizer: a llama2.c / sentencepiece BPE tokenizer, or a GGUF byte-level BPE one
    (encode and decode).

    File format (llama2.c tokenizer.bin): int32 max_token_length, then vocab_size records of
    float32 score, int32 len, len bytes (the piece, no terminator). The vocab size is not in the
    file; it comes from the model header and is passed to load. Loading checks every length
    against max_token_length and the bytes left in the file, refuses pieces with NUL bytes, non
    finite scores and trailing bytes, and fails with a one-line reason naming the file.

    A file that starts with "GGUF" is a model file carrying its tokenizer in its metadata (read
    through hafl_gguf). `tokenizer.ggml.model = llama` (SentencePiece) and `gpt2` (byte-level
    BPE, below) are supported; other models are refused naming the key. For llama,
    `tokenizer.ggml.tokens` and `.scores` (and `.token_type` when present) must have vocab_size
    entries; the pieces become what llama2.c's tokenizer export writes for the same
    SentencePiece model (U+2581 as a space, BOS and EOS as "\n<s>\n" and "\n</s>\n"), so
    encoding and decoding equal the .bin's. What the code below hard-codes
    must hold: unknown, BOS and EOS ids (when given) 0, 1 and 2, add_bos_token (when given) true,
    add_eos_token (when given) false, and ids 3..258 the byte pieces <0x00>..<0xFF> (of token
    type byte when types are given); a file that differs is refused naming the key.

    Encoding (llama2.c and SentencePiece GGUF) follows llama2.c's encode exactly:
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

    GGUF `tokenizer.ggml.model = gpt2` (GPT-2, Llama 3, Qwen2...): hafl_bpe.h specifies the
    metadata it needs (tokens, token types, merges, pre-tokenizer), its checks and the encoding;
    here the pieces are the tokens as spelled in the file (byte-level alphabet, "Ġ" for a
    space), scores come from `tokenizer.ggml.scores` when present (else 0), and the special ids
    from `tokenizer.ggml.bos_token_id`, `eos_token_id` and `eot_token_id` (each optional, < the
    vocabulary size) and the flags `add_bos_token` (default: true for the llama-bpe
    pre-tokenizer, else false) and `add_eos_token` (default false); a flag that is true with no
    id to add is refused. Encoding is: BOS when asked and the tokenizer has one, hafl_bpe's ids
    of the text (no dummy prefix; control tokens written in the text are encoded as plain text,
    never as their special ids), EOS when asked and present. Decoding a token returns its bytes
    whatever the previous token (control tokens decode to their text, e.g. "<|eot_id|>").

    Special ids. hafl_tokenizer_bos/_eos give the ids encode adds (llama2.c: 1 and 2, as the
    constants below, which hold only for llama2.c and SentencePiece tokenizers); _adds_bos/
    _adds_eos say whether the model expects them (llama2.c: BOS yes, EOS no); callers that may
    hold a GGUF tokenizer use these rather than the constants.

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
//  The BOS and EOS ids encode adds when asked, or -1 when the tokenizer has none (only a GGUF
//  gpt2 one can lack them).
int32_t hafl_tokenizer_bos(const hafl_tokenizer_t *self);
int32_t hafl_tokenizer_eos(const hafl_tokenizer_t *self);
//  Whether the model's convention is to start a text with BOS / end it with EOS.
bool hafl_tokenizer_adds_bos(const hafl_tokenizer_t *self);
bool hafl_tokenizer_adds_eos(const hafl_tokenizer_t *self);
//  For a byte-level BPE tokenizer: into digest the SHA-256 of what decides its encodings besides
//  the pieces (pre-tokenizer, token types, merges, BOS/EOS ids and whether BOS/EOS are added),
//  and true. For a SentencePiece one (pieces and scores decide everything): false, nothing
//  written. Caches keyed by a tokenizer add it to the pieces and scores.
bool hafl_tokenizer_rules_digest(const hafl_tokenizer_t *self, uint8_t digest[32]);
//  Whether a generated id ends the text: BOS for llama2.c and SentencePiece tokenizers (run.c's
//  rule), BOS, EOS or end-of-turn for GGUF gpt2 ones.
bool hafl_tokenizer_ends_text(const hafl_tokenizer_t *self, int32_t id);
//  Piece score, or 0 when out of range.
float hafl_tokenizer_score(const hafl_tokenizer_t *self, int32_t id);
//  Id of the piece exactly equal to the len bytes at str, or -1.
int32_t hafl_tokenizer_lookup(const hafl_tokenizer_t *self, const char *str, size_t len);

//  Ids that encoding text_len bytes can produce at most (BOS, dummy prefix, one per byte, EOS;
//  byte-level BPE has no dummy prefix).
static inline size_t hafl_tokenizer_encode_capacity(size_t text_len)
{
    return text_len + 3;
}

//  Encode the NUL-terminated text into tokens[capacity]; *n_tokens receives the count. bos and
//  eos ask for the tokenizer's BOS and EOS ids (nothing is added for an id it lacks).
//  Returns 0, or -1 when capacity < hafl_tokenizer_encode_capacity (strlen (text)), on no
//  memory or when the regex engine fails (nothing is written to *n_tokens then).
int hafl_tokenizer_encode(const hafl_tokenizer_t *self, const char *text, bool bos, bool eos,
                          int32_t *tokens, size_t capacity, size_t *n_tokens);

//  The text of token after prev_token (see above); owned by the tokenizer. NULL if token is out
//  of range. The result may be a one-byte string holding a raw byte, or empty for byte 0 (a
//  byte-level token holding a 0 byte is cut there; hafl_bpe_decode gives its length).
const char *hafl_tokenizer_decode(const hafl_tokenizer_t *self, int32_t prev_token, int32_t token);

//  Print a decoded piece the way llama2.c does: nothing for NULL or empty pieces, nothing for a
//  single byte that is neither printable ASCII nor whitespace (a lone raw byte such as part of
//  a UTF-8 sequence or a control code), the piece as is otherwise.
void hafl_tokenizer_print_piece(FILE *out, const char *piece);
//  Print token after prev_token as generation shows it: SentencePiece and llama2.c tokenizers
//  through hafl_tokenizer_print_piece (llama2.c's rule); byte-level BPE tokens as their raw
//  bytes, all of them (a character split over several tokens is whole once they are all out).
void hafl_tokenizer_print_token(const hafl_tokenizer_t *self, FILE *out, int32_t prev_token,
                                int32_t token);

#endif
