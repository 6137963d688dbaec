/*  hafl_adapter: the federated state of one LoRA adapter set plus its classification head.

    This is what the server owns, clients train, the codec ships and the strategies aggregate.
    For each adapted matrix W0 (d_out x d_in) it holds the rank-R factors as R rank-1
    components, component-major so component k is contiguous:
        bt[m] : [R][d_out]   bt[m] + k*d_out is b_k   (B transposed)
        a[m]  : [R][d_in]    a[m]  + k*d_in  is a_k
    The layer computes W0 x + scale * sum_k b_k (a_k . x). Per component there is an importance
    score (docs/METHOD.md section 2). The head is [classes][dim + 1] with the bias in the last column.

    A matrix may also carry "merged" rank-1 terms (mbt, ma; count n_merged[m]), already scaled,
    that belong to the frozen base: W = W0 + sum_j mb_j ma_j^T. FLoRA and FlexLoRA use them to
    ship updates that are folded into the base; everyone else leaves them empty.

    Ownership: hafl_adapter_new/dup return an adapter the caller owns; destroy frees it and
    nulls the pointer. The layout is copied in, so callers may free theirs.
*/
#ifndef HAFL_ADAPTER_H
#define HAFL_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#define HAFL_MATRIX_NAME_MAX 32
#define HAFL_ADAPTER_MAX_MERGED (1u << 16) //  merged terms per matrix

//  Role of a component in one client's round: the ROUND message's roles bytes, the schemes'
//  output and the trainers' input all use these values.
enum { HAFL_ROLE_ABSENT = 0, HAFL_ROLE_FROZEN = 1, HAFL_ROLE_TRAINABLE = 2 };

typedef struct {
    char name[HAFL_MATRIX_NAME_MAX];   //  e.g. "L0.wq"
    uint32_t d_out;
    uint32_t d_in;
} hafl_matrix_info_t;

//  Shape of an adapter set: what the server announces in its welcome.
typedef struct {
    uint32_t n_matrices;
    hafl_matrix_info_t *matrices;   //  [n_matrices], owned
    uint32_t rank;                  //  R, components per matrix
    float scale;                    //  alpha / R, the same for every client
    uint32_t head_rows;             //  classes
    uint32_t head_cols;             //  model dim + 1 (bias column)
} hafl_layout_t;

typedef struct {
    hafl_layout_t layout;
    float **bt;          //  [n_matrices] -> [R][d_out]
    float **a;           //  [n_matrices] -> [R][d_in]
    float *score;        //  [n_matrices * R], global or local importance S_k
    float *head;         //  [head_rows * head_cols]
    uint32_t *n_merged;  //  [n_matrices], merged base terms per matrix
    float **mbt;         //  [n_matrices] -> [n_merged][d_out]   (NULL when n_merged is 0)
    float **ma;          //  [n_matrices] -> [n_merged][d_in]
    uint64_t merged_epoch;  //  bumped whenever merged terms are replaced (not appended), so a
                            //  sender can tell whether a peer's copy is a prefix of these
} hafl_adapter_t;

//  Deep-copy a layout into dst (dst->matrices is allocated). Returns 0, or -1 on no memory.
int hafl_layout_copy (hafl_layout_t *dst, const hafl_layout_t *src);
//  Free what hafl_layout_copy allocated.
void hafl_layout_clear (hafl_layout_t *layout);
//  Total float count of one rank-1 component of matrix m (d_out + d_in).
static inline size_t
hafl_layout_component_floats (const hafl_layout_t *layout, uint32_t m)
{
    return (size_t) layout->matrices[m].d_out + layout->matrices[m].d_in;
}

//  A zeroed adapter of this layout (no merged terms), or NULL.
hafl_adapter_t *hafl_adapter_new (const hafl_layout_t *layout);
//  docs/METHOD.md section 1 initialisation: B = 0, A Kaiming-uniform U(-1/sqrt(d_in), 1/sqrt(d_in)),
//  head U(-1/sqrt(dim), 1/sqrt(dim)) with zero bias, scores 0; drawn from (seed, INIT stream).
void hafl_adapter_init (hafl_adapter_t *self, uint64_t seed);
hafl_adapter_t *hafl_adapter_dup (const hafl_adapter_t *self);
void hafl_adapter_destroy (hafl_adapter_t **self_p);
//  Copy all values (factors, scores, head, merged terms) from src, same layout. 0 or -1.
int hafl_adapter_copy_from (hafl_adapter_t *self, const hafl_adapter_t *src);

static inline float *
hafl_adapter_b (const hafl_adapter_t *self, uint32_t m, uint32_t k)
{
    return self->bt[m] + (size_t) k * self->layout.matrices[m].d_out;
}
static inline float *
hafl_adapter_a (const hafl_adapter_t *self, uint32_t m, uint32_t k)
{
    return self->a[m] + (size_t) k * self->layout.matrices[m].d_in;
}

//  Replace the merged terms of matrix m with n terms copied from bt [n][d_out], a [n][d_in].
int hafl_adapter_set_merged (hafl_adapter_t *self, uint32_t m, uint32_t n, const float *bt,
                             const float *a);
//  Append n merged terms to matrix m.
int hafl_adapter_append_merged (hafl_adapter_t *self, uint32_t m, uint32_t n, const float *bt,
                                const float *a);
//  Make room for n more merged terms of matrix m and count them; *bt [n][d_out] and *a
//  [n][d_in] point at the new terms, which the caller must fill before anything reads the
//  adapter (lets a receiver copy terms straight from a message). 0, or -1 (nothing changed).
int hafl_adapter_grow_merged (hafl_adapter_t *self, uint32_t m, uint32_t n, float **bt,
                              float **a);

//  SHA-256 over a canonical little-endian serialisation of the whole adapter (layout, factors,
//  scores, head, merged terms): equal digests mean bit-identical state.
void hafl_adapter_digest (const hafl_adapter_t *self, uint8_t digest[32]);
//  Same digest as lowercase hex, 65 bytes with the terminator.
void hafl_adapter_digest_hex (const hafl_adapter_t *self, char hex[65]);

//  Binary file I/O: magic "HAFLADP1", then the serialisation above. Save is atomic
//  (temp file, fsync, rename). Load checks magic, version and every size against the file;
//  on error returns NULL and writes a one-line reason naming the file into err.
int hafl_adapter_save (const hafl_adapter_t *self, const char *path, char *err, size_t errlen);
hafl_adapter_t *hafl_adapter_load (const char *path, char *err, size_t errlen);

#endif
