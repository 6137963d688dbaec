/*  hafl_adapter: allocation, initialisation, digest and file I/O of the federated adapter state.
    See hafl_adapter.h. The serialisation (used by both the digest and the file format) is:
        "HAFLADP1" | u32 n_matrices | u32 rank | f32 scale | u32 head_rows | u32 head_cols
        per matrix: name[32] | u32 d_out | u32 d_in | u32 n_merged
        per matrix: bt [R][d_out] f32 | a [R][d_in] f32
        score [n_matrices*R] f32 | head [rows*cols] f32
        per matrix: mbt [n_merged][d_out] f32 | ma [n_merged][d_in] f32
    all little-endian.
*/
#include "hafl_adapter.h"
#include "hafl_rng.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hafl serialises float32 as little-endian and expects a little-endian host"
#endif

static const char s_magic[8] = {'H', 'A', 'F', 'L', 'A', 'D', 'P', '1'};
#define S_MAX_DIM (1u << 20)
#define S_MAX_MATRICES 4096u
#define S_MAX_RANK 1024u

int
hafl_layout_copy (hafl_layout_t *dst, const hafl_layout_t *src)
{
    *dst = *src;
    dst->matrices = NULL;
    if (src->n_matrices == 0)
        return 0;
    dst->matrices = malloc (src->n_matrices * sizeof (hafl_matrix_info_t));
    if (!dst->matrices)
        return -1;
    memcpy (dst->matrices, src->matrices, src->n_matrices * sizeof (hafl_matrix_info_t));
    return 0;
}

void
hafl_layout_clear (hafl_layout_t *layout)
{
    free (layout->matrices);
    layout->matrices = NULL;
    layout->n_matrices = 0;
}

hafl_adapter_t *
hafl_adapter_new (const hafl_layout_t *layout)
{
    hafl_adapter_t *self = calloc (1, sizeof (hafl_adapter_t));
    if (!self)
        return NULL;
    if (hafl_layout_copy (&self->layout, layout))
        goto fail;
    uint32_t M = layout->n_matrices, R = layout->rank;
    self->bt = calloc (M ? M : 1, sizeof (float *));
    self->a = calloc (M ? M : 1, sizeof (float *));
    self->mbt = calloc (M ? M : 1, sizeof (float *));
    self->ma = calloc (M ? M : 1, sizeof (float *));
    self->n_merged = calloc (M ? M : 1, sizeof (uint32_t));
    self->score = calloc ((size_t) M * R + 1, sizeof (float));
    self->head = calloc ((size_t) layout->head_rows * layout->head_cols + 1, sizeof (float));
    if (!self->bt || !self->a || !self->mbt || !self->ma || !self->n_merged || !self->score
        || !self->head)
        goto fail;
    for (uint32_t m = 0; m < M; m++) {
        self->bt[m] = calloc ((size_t) R * layout->matrices[m].d_out + 1, sizeof (float));
        self->a[m] = calloc ((size_t) R * layout->matrices[m].d_in + 1, sizeof (float));
        if (!self->bt[m] || !self->a[m])
            goto fail;
    }
    return self;
fail:
    hafl_adapter_destroy (&self);
    return NULL;
}

void
hafl_adapter_destroy (hafl_adapter_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_adapter_t *self = *self_p;
    for (uint32_t m = 0; m < self->layout.n_matrices; m++) {
        if (self->bt)
            free (self->bt[m]);
        if (self->a)
            free (self->a[m]);
        if (self->mbt)
            free (self->mbt[m]);
        if (self->ma)
            free (self->ma[m]);
    }
    free (self->bt);
    free (self->a);
    free (self->mbt);
    free (self->ma);
    free (self->n_merged);
    free (self->score);
    free (self->head);
    hafl_layout_clear (&self->layout);
    free (self);
    *self_p = NULL;
}

void
hafl_adapter_init (hafl_adapter_t *self, uint64_t seed)
{
    const hafl_layout_t *L = &self->layout;
    hafl_rng_t rng;
    hafl_rng_seed (&rng, seed, HAFL_STREAM_INIT, 0);
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        uint32_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
        memset (self->bt[m], 0, (size_t) L->rank * d_out * sizeof (float));
        double bound = 1.0 / sqrt ((double) d_in);
        for (size_t i = 0; i < (size_t) L->rank * d_in; i++)
            self->a[m][i] = (float) ((2.0 * hafl_rng_uniform (&rng) - 1.0) * bound);
        free (self->mbt[m]);
        free (self->ma[m]);
        self->mbt[m] = self->ma[m] = NULL;
        self->n_merged[m] = 0;
    }
    memset (self->score, 0, (size_t) L->n_matrices * L->rank * sizeof (float));
    if (L->head_cols > 1) {
        double bound = 1.0 / sqrt ((double) (L->head_cols - 1));
        for (uint32_t r = 0; r < L->head_rows; r++) {
            float *row = self->head + (size_t) r * L->head_cols;
            for (uint32_t c = 0; c + 1 < L->head_cols; c++)
                row[c] = (float) ((2.0 * hafl_rng_uniform (&rng) - 1.0) * bound);
            row[L->head_cols - 1] = 0.0f;
        }
    }
}

int
hafl_adapter_set_merged (hafl_adapter_t *self, uint32_t m, uint32_t n, const float *bt,
                         const float *a)
{
    free (self->mbt[m]);
    free (self->ma[m]);
    self->mbt[m] = self->ma[m] = NULL;
    self->n_merged[m] = 0;
    self->merged_epoch++;
    return hafl_adapter_append_merged (self, m, n, bt, a);
}

int
hafl_adapter_grow_merged (hafl_adapter_t *self, uint32_t m, uint32_t n, float **bt, float **a)
{
    size_t d_out = self->layout.matrices[m].d_out, d_in = self->layout.matrices[m].d_in;
    size_t old = self->n_merged[m], total = old + n;
    if (total > HAFL_ADAPTER_MAX_MERGED)
        return -1;
    float *nb = realloc (self->mbt[m], (total ? total : 1) * d_out * sizeof (float));
    if (!nb)
        return -1;
    self->mbt[m] = nb;
    float *na = realloc (self->ma[m], (total ? total : 1) * d_in * sizeof (float));
    if (!na)
        return -1;   //  mbt grew but n_merged is unchanged, so the state stays consistent
    self->ma[m] = na;
    self->n_merged[m] = (uint32_t) total;
    *bt = nb + old * d_out;
    *a = na + old * d_in;
    return 0;
}

int
hafl_adapter_append_merged (hafl_adapter_t *self, uint32_t m, uint32_t n, const float *bt,
                            const float *a)
{
    if (n == 0)
        return 0;
    float *to_bt, *to_a;
    if (hafl_adapter_grow_merged (self, m, n, &to_bt, &to_a))
        return -1;
    memcpy (to_bt, bt, (size_t) n * self->layout.matrices[m].d_out * sizeof (float));
    memcpy (to_a, a, (size_t) n * self->layout.matrices[m].d_in * sizeof (float));
    return 0;
}

int
hafl_adapter_copy_from (hafl_adapter_t *self, const hafl_adapter_t *src)
{
    const hafl_layout_t *L = &self->layout;
    if (L->n_matrices != src->layout.n_matrices || L->rank != src->layout.rank
        || L->head_rows != src->layout.head_rows || L->head_cols != src->layout.head_cols)
        return -1;
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        if (L->matrices[m].d_out != src->layout.matrices[m].d_out
            || L->matrices[m].d_in != src->layout.matrices[m].d_in)
            return -1;
        memcpy (self->bt[m], src->bt[m], (size_t) L->rank * L->matrices[m].d_out * sizeof (float));
        memcpy (self->a[m], src->a[m], (size_t) L->rank * L->matrices[m].d_in * sizeof (float));
        if (hafl_adapter_set_merged (self, m, src->n_merged[m], src->mbt[m], src->ma[m]))
            return -1;
    }
    memcpy (self->score, src->score, (size_t) L->n_matrices * L->rank * sizeof (float));
    memcpy (self->head, src->head, (size_t) L->head_rows * L->head_cols * sizeof (float));
    self->merged_epoch = src->merged_epoch;
    return 0;
}

hafl_adapter_t *
hafl_adapter_dup (const hafl_adapter_t *self)
{
    hafl_adapter_t *copy = hafl_adapter_new (&self->layout);
    if (copy && hafl_adapter_copy_from (copy, self))
        hafl_adapter_destroy (&copy);
    return copy;
}

//  The serialiser writes through a sink so the digest and the file share one definition.
typedef struct {
    crypto_hash_sha256_state *hash;
    FILE *file;
    int failed;
} s_sink_t;

static void
s_put (s_sink_t *sink, const void *data, size_t size)
{
    if (size == 0)
        return;
    if (sink->hash)
        crypto_hash_sha256_update (sink->hash, data, size);
    if (sink->file && !sink->failed && fwrite (data, 1, size, sink->file) != size)
        sink->failed = 1;
}

static void
s_put_u32 (s_sink_t *sink, uint32_t value)
{
    s_put (sink, &value, 4);
}

static void
s_serialise (const hafl_adapter_t *self, s_sink_t *sink)
{
    const hafl_layout_t *L = &self->layout;
    s_put (sink, s_magic, 8);
    s_put_u32 (sink, L->n_matrices);
    s_put_u32 (sink, L->rank);
    s_put (sink, &L->scale, 4);
    s_put_u32 (sink, L->head_rows);
    s_put_u32 (sink, L->head_cols);
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        char name[HAFL_MATRIX_NAME_MAX] = {0};
        memcpy (name, L->matrices[m].name, strnlen (L->matrices[m].name, HAFL_MATRIX_NAME_MAX - 1));
        s_put (sink, name, HAFL_MATRIX_NAME_MAX);
        s_put_u32 (sink, L->matrices[m].d_out);
        s_put_u32 (sink, L->matrices[m].d_in);
        s_put_u32 (sink, self->n_merged[m]);
    }
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        s_put (sink, self->bt[m], (size_t) L->rank * L->matrices[m].d_out * 4);
        s_put (sink, self->a[m], (size_t) L->rank * L->matrices[m].d_in * 4);
    }
    s_put (sink, self->score, (size_t) L->n_matrices * L->rank * 4);
    s_put (sink, self->head, (size_t) L->head_rows * L->head_cols * 4);
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        s_put (sink, self->mbt[m], (size_t) self->n_merged[m] * L->matrices[m].d_out * 4);
        s_put (sink, self->ma[m], (size_t) self->n_merged[m] * L->matrices[m].d_in * 4);
    }
}

void
hafl_adapter_digest (const hafl_adapter_t *self, uint8_t digest[32])
{
    crypto_hash_sha256_state state;
    crypto_hash_sha256_init (&state);
    s_sink_t sink = {&state, NULL, 0};
    s_serialise (self, &sink);
    crypto_hash_sha256_final (&state, digest);
}

void
hafl_adapter_digest_hex (const hafl_adapter_t *self, char hex[65])
{
    uint8_t digest[32];
    hafl_adapter_digest (self, digest);
    sodium_bin2hex (hex, 65, digest, 32);
}

int
hafl_adapter_save (const hafl_adapter_t *self, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf (tmp, sizeof tmp, "%s.tmp.%d", path, (int) getpid ()) >= (int) sizeof tmp) {
        snprintf (err, errlen, "%s: path too long", path);
        return -1;
    }
    FILE *file = fopen (tmp, "wb");
    if (!file) {
        snprintf (err, errlen, "%s: cannot create: %s", tmp, strerror (errno));
        return -1;
    }
    s_sink_t sink = {NULL, file, 0};
    s_serialise (self, &sink);
    int failed = sink.failed || fflush (file) != 0 || fsync (fileno (file)) != 0;
    failed |= fclose (file) != 0;
    if (failed || rename (tmp, path) != 0) {
        snprintf (err, errlen, "%s: write failed: %s", path, strerror (errno));
        unlink (tmp);
        return -1;
    }
    return 0;
}

//  Bounds-checked reader over a whole file held in memory.
typedef struct {
    const uint8_t *data;
    size_t size, pos;
} s_reader_t;

static int
s_take (s_reader_t *reader, void *out, size_t size)
{
    if (size > reader->size - reader->pos)
        return -1;
    memcpy (out, reader->data + reader->pos, size);
    reader->pos += size;
    return 0;
}

hafl_adapter_t *
hafl_adapter_load (const char *path, char *err, size_t errlen)
{
    hafl_adapter_t *self = NULL;
    hafl_layout_t layout = {0};
    uint32_t *merged = NULL;
    uint8_t *data = NULL;
    FILE *file = fopen (path, "rb");
    if (!file) {
        snprintf (err, errlen, "%s: cannot open: %s", path, strerror (errno));
        return NULL;
    }
    struct stat st;
    if (fstat (fileno (file), &st) != 0 || st.st_size < 28) {
        snprintf (err, errlen, "%s: too short to be an adapter file", path);
        goto done;
    }
    data = malloc ((size_t) st.st_size);
    if (!data || fread (data, 1, (size_t) st.st_size, file) != (size_t) st.st_size) {
        snprintf (err, errlen, "%s: read failed", path);
        goto done;
    }
    s_reader_t reader = {data, (size_t) st.st_size, 0};
    char magic[8];
    s_take (&reader, magic, 8);
    if (memcmp (magic, s_magic, 8) != 0) {
        snprintf (err, errlen, "%s: bad magic (not a hafl adapter file, or another version)", path);
        goto done;
    }
    s_take (&reader, &layout.n_matrices, 4);
    s_take (&reader, &layout.rank, 4);
    s_take (&reader, &layout.scale, 4);
    s_take (&reader, &layout.head_rows, 4);
    s_take (&reader, &layout.head_cols, 4);
    if (layout.n_matrices > S_MAX_MATRICES || layout.rank > S_MAX_RANK
        || layout.head_rows > S_MAX_DIM || layout.head_cols > S_MAX_DIM || !isfinite (layout.scale)) {
        snprintf (err, errlen, "%s: header out of range", path);
        goto done;
    }
    layout.matrices = calloc (layout.n_matrices + 1, sizeof (hafl_matrix_info_t));
    merged = calloc (layout.n_matrices + 1, sizeof (uint32_t));
    if (!layout.matrices || !merged) {
        snprintf (err, errlen, "%s: out of memory", path);
        goto done;
    }
    for (uint32_t m = 0; m < layout.n_matrices; m++) {
        hafl_matrix_info_t *info = &layout.matrices[m];
        if (s_take (&reader, info->name, HAFL_MATRIX_NAME_MAX) || s_take (&reader, &info->d_out, 4)
            || s_take (&reader, &info->d_in, 4) || s_take (&reader, &merged[m], 4)) {
            snprintf (err, errlen, "%s: truncated in matrix table", path);
            goto done;
        }
        info->name[HAFL_MATRIX_NAME_MAX - 1] = 0;
        if (info->d_out == 0 || info->d_in == 0 || info->d_out > S_MAX_DIM || info->d_in > S_MAX_DIM
            || merged[m] > HAFL_ADAPTER_MAX_MERGED) {
            snprintf (err, errlen, "%s: matrix %u shape out of range", path, m);
            goto done;
        }
    }
    //  Check the exact remaining size before allocating the tensors.
    uint64_t floats = (uint64_t) layout.n_matrices * layout.rank
                      + (uint64_t) layout.head_rows * layout.head_cols;
    for (uint32_t m = 0; m < layout.n_matrices; m++)
        floats += ((uint64_t) layout.rank + merged[m])
                  * ((uint64_t) layout.matrices[m].d_out + layout.matrices[m].d_in);
    if (floats * 4 != reader.size - reader.pos) {
        snprintf (err, errlen, "%s: size mismatch: header declares %llu payload bytes, file has %zu",
                  path, (unsigned long long) (floats * 4), reader.size - reader.pos);
        goto done;
    }
    self = hafl_adapter_new (&layout);
    if (!self) {
        snprintf (err, errlen, "%s: out of memory", path);
        goto done;
    }
    for (uint32_t m = 0; m < layout.n_matrices; m++) {
        s_take (&reader, self->bt[m], (size_t) layout.rank * layout.matrices[m].d_out * 4);
        s_take (&reader, self->a[m], (size_t) layout.rank * layout.matrices[m].d_in * 4);
    }
    s_take (&reader, self->score, (size_t) layout.n_matrices * layout.rank * 4);
    s_take (&reader, self->head, (size_t) layout.head_rows * layout.head_cols * 4);
    for (uint32_t m = 0; m < layout.n_matrices; m++) {
        const float *mb = (const float *) (reader.data + reader.pos);
        size_t nb = (size_t) merged[m] * layout.matrices[m].d_out * 4;
        const float *ma = (const float *) (reader.data + reader.pos + nb);
        size_t na = (size_t) merged[m] * layout.matrices[m].d_in * 4;
        //  Copy through aligned buffers: the file offsets are only 4-byte aligned by contract.
        float *bt = malloc (nb + 4), *a = malloc (na + 4);
        if (!bt || !a) {
            free (bt);
            free (a);
            hafl_adapter_destroy (&self);
            snprintf (err, errlen, "%s: out of memory", path);
            goto done;
        }
        memcpy (bt, mb, nb);
        memcpy (a, ma, na);
        int rc = hafl_adapter_set_merged (self, m, merged[m], bt, a);
        free (bt);
        free (a);
        reader.pos += nb + na;
        if (rc) {
            hafl_adapter_destroy (&self);
            snprintf (err, errlen, "%s: out of memory", path);
            goto done;
        }
    }
done:
    fclose (file);
    free (data);
    free (merged);
    hafl_layout_clear (&layout);
    return self;
}
