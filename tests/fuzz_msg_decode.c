/*  fuzz_msg_decode: libFuzzer target for the wire decoder (messages/hafl_msg.c).

    The input is split into frames at every 4-byte separator "\xc1\xc1\xc1\xc1" (0xc1 is the
    one byte MessagePack never uses, so encoded headers never contain it and the fuzzer can
    move frame boundaries by inserting or deleting a separator). The frames are decoded as one
    message; a success must encode again, and that encoding must decode and re-encode to the
    same bytes (the codec is a fixpoint after one round). Every frame after the first is also
    fed to the frame-level rank-1 decoder with the same round-trip rule, and decoded messages
    are checked against a small fixed layout. The zero-copy decoders (hafl_msg_decode_take,
    hafl_msg_rank1_view) must agree with the copying ones: the same error code, or a message
    that encodes to the same bytes. Any violation traps, which libFuzzer reports as a
    crash; so do ASan/UBSan findings.

    Built a second time with -DHAFL_FUZZ_SEEDS, the file is instead a program that writes one
    seed per message type (the encodings of tests/hafl_msg_samples.h) into the folder named by
    its argument; tests/codec.cmake runs it before the brief fuzzing run.
*/
#include "hafl_msg.h"
#include "hafl_msg_samples.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const unsigned char s_sep[4] = {0xc1, 0xc1, 0xc1, 0xc1};

#ifndef HAFL_FUZZ_SEEDS

static zmsg_t *s_split(const uint8_t *data, size_t size)
{
    zmsg_t *z = zmsg_new();
    size_t start = 0;
    for (size_t i = 0; i + 4 <= size;) {
        if (memcmp(data + i, s_sep, 4) == 0) {
            zmsg_addmem(z, data + start, i - start);
            i += 4;
            start = i;
        } else
            i++;
    }
    zmsg_addmem(z, data + start, size - start);
    return z;
}

static void s_rank1_round_trip(zframe_t *frame)
{
    hafl_msg_error_t err;
    hafl_rank1_t r, r2;
    if (hafl_msg_rank1_decode(frame, &r, &err) != 0) {
        if (err.code <= HAFL_MSG_OK || err.code >= HAFL_MSG_ERROR_COUNT || r.b || r.a)
            __builtin_trap();
        return;
    }
    zframe_t *f2 = hafl_msg_rank1_encode(&r, &err);
    if (!f2 || hafl_msg_rank1_decode(f2, &r2, &err) != 0)
        __builtin_trap();
    if (r2.matrix != r.matrix || r2.k != r.k || memcmp(&r2.score, &r.score, 4) ||
        r2.d_out != r.d_out || r2.d_in != r.d_in || memcmp(r2.b, r.b, 4 * (size_t)r.d_out) ||
        memcmp(r2.a, r.a, 4 * (size_t)r.d_in))
        __builtin_trap();
    hafl_rank1_t v;
    if (hafl_msg_rank1_view(frame, &v, &err) != 0 || v.matrix != r.matrix || v.k != r.k ||
        memcmp(&v.score, &r.score, 4) || v.d_out != r.d_out || v.d_in != r.d_in ||
        memcmp(v.b, r.b, 4 * (size_t)r.d_out) || memcmp(v.a, r.a, 4 * (size_t)r.d_in))
        __builtin_trap();
    hafl_msg_rank1_clear(&v);
    hafl_msg_rank1_clear(&r2);
    hafl_msg_rank1_clear(&r);
    zframe_destroy(&f2);
}

//  The zero-copy decoder on a copy of z against the copying decoder's outcome m / code.
static void s_take_agrees(zmsg_t *z, const hafl_msg_t *m, hafl_msg_code_t code)
{
    zmsg_t *dup = zmsg_dup(z);
    hafl_msg_error_t err;
    hafl_msg_t *t = hafl_msg_decode_take(&dup, &err);
    if (!m) {
        if (t || !dup || err.code != code)
            __builtin_trap();
        zmsg_destroy(&dup);
        return;
    }
    if (!t || dup)
        __builtin_trap();
    zmsg_t *zm = hafl_msg_encode(m, &err), *zt = hafl_msg_encode(t, &err);
    if ((zm == NULL) != (zt == NULL) || (zm && !s_same_frames(zm, zt)))
        __builtin_trap();
    zmsg_destroy(&zm);
    zmsg_destroy(&zt);
    hafl_msg_destroy(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zmsg_t *z = s_split(data, size);
    uint64_t major, minor, type;
    (void)hafl_msg_peek(z, &major, &minor, &type);

    hafl_msg_error_t err;
    hafl_msg_t *m = hafl_msg_decode(z, &err);
    s_take_agrees(z, m, err.code);
    if (!m) {
        if (err.code <= HAFL_MSG_OK || err.code >= HAFL_MSG_ERROR_COUNT || !err.text[0] ||
            strchr(err.text, '\n'))
            __builtin_trap();
    } else {
        hafl_matrix_info_t mats[3] = {{"a", 6, 5}, {"b", 4, 7}, {"c", 3, 3}};
        hafl_layout_t layout = {3, mats, 4, 1.0f, 4, 9};
        (void)hafl_msg_check_layout(m, &layout, &err);
        zmsg_t *z2 = hafl_msg_encode(m, &err);
        //  Only a newer minor's values (a REJECT reason) may be unwritable in ours.
        if (!z2 && m->minor <= HAFL_PROTO_MINOR)
            __builtin_trap();
        if (z2) {
            hafl_msg_t *m2 = hafl_msg_decode(z2, &err);
            if (!m2)
                __builtin_trap();
            zmsg_t *z3 = hafl_msg_encode(m2, &err);
            if (!z3 || !s_same_frames(z2, z3))
                __builtin_trap();
            zmsg_destroy(&z3);
            hafl_msg_destroy(&m2);
            zmsg_destroy(&z2);
        }
        hafl_msg_destroy(&m);
    }
    zframe_t *f = zmsg_first(z);
    while ((f = zmsg_next(z)))
        s_rank1_round_trip(f);
    zmsg_destroy(&z);
    return 0;
}

#else //  HAFL_FUZZ_SEEDS: write the seed corpus

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FOLDER\n", argv[0]);
        return 2;
    }
    for (int t = 1; t < HAFL_MSG_TYPE_COUNT; t++) {
        hafl_msg_t *m = s_sample((hafl_msg_type_t)t);
        hafl_msg_error_t err;
        zmsg_t *z = hafl_msg_encode(m, &err);
        CHECKF(z, "%s", err.text);
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%s", argv[1], hafl_msg_type_name((hafl_msg_type_t)t));
        FILE *out = fopen(path, "wb");
        CHECKF(out, "cannot write %s", path);
        int i = 0;
        for (zframe_t *f = zmsg_first(z); f; f = zmsg_next(z), i++) {
            if (i > 0)
                CHECK(fwrite(s_sep, 1, 4, out) == 4);
            CHECK(fwrite(zframe_data(f), 1, zframe_size(f), out) == zframe_size(f));
        }
        CHECK(fclose(out) == 0);
        zmsg_destroy(&z);
        hafl_msg_destroy(&m);
    }
    return 0;
}

#endif
