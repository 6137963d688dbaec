/*  hafl_mpreader: bounds-checked MessagePack pull reader (see hafl_mpreader.h).

    Every multi-byte quantity on the wire is big-endian; it is assembled byte by byte so the
    reader works on any host and any alignment. Before touching n bytes the reader checks that
    n bytes remain, with the comparison written as `n > remaining` so no pointer arithmetic can
    overflow.
*/
#include "hafl_mpreader.h"

#include <string.h>

static uint64_t s_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

//  The payload length of str/bin/ext and the element count of array/map are both read here:
//  `width` bytes of big-endian length follow the tag.
static int s_length(hafl_mpreader_t *self, const uint8_t *q, int width, uint32_t *len)
{
    if ((size_t)width > (size_t)(self->end - q))
        return HAFL_MP_ETRUNCATED;
    *len = (uint32_t)s_be(q, width);
    return HAFL_MP_OK;
}

int hafl_mpreader_next(hafl_mpreader_t *self, hafl_mp_item_t *item)
{
    memset(item, 0, sizeof *item);
    if (self->p >= self->end)
        return HAFL_MP_ETRUNCATED;
    const uint8_t *q = self->p;
    const uint8_t tag = *q++;
    size_t left = (size_t)(self->end - q);
    item->tag = tag;

    //  Payload-carrying kinds set these and share the bounds check at the end.
    int payload = 0;
    int width = 0; //  bytes of length field

    if (tag <= 0x7f) {
        item->kind = HAFL_MP_UINT;
        item->u = tag;
    } else if (tag >= 0xe0) {
        item->kind = HAFL_MP_INT;
        item->i = (int8_t)tag;
    } else if (tag >= 0x80 && tag <= 0x8f) {
        item->kind = HAFL_MP_MAP;
        item->len = tag & 0x0f;
    } else if (tag >= 0x90 && tag <= 0x9f) {
        item->kind = HAFL_MP_ARRAY;
        item->len = tag & 0x0f;
    } else if (tag >= 0xa0 && tag <= 0xbf) {
        item->kind = HAFL_MP_STR;
        item->len = tag & 0x1f;
        payload = 1;
    } else
        switch (tag) {
        case 0xc0:
            item->kind = HAFL_MP_NIL;
            break;
        case 0xc1:
            return HAFL_MP_EINVALID;
        case 0xc2:
        case 0xc3:
            item->kind = HAFL_MP_BOOL;
            item->u = tag == 0xc3;
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            item->kind = HAFL_MP_BIN;
            width = 1 << (tag - 0xc4);
            payload = 1;
            break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
            item->kind = HAFL_MP_EXT;
            width = 1 << (tag - 0xc7);
            payload = 2;
            break;
        case 0xca:
        case 0xcb: {
            int n = tag == 0xca ? 4 : 8;
            if ((size_t)n > left)
                return HAFL_MP_ETRUNCATED;
            uint64_t bits = s_be(q, n);
            q += n;
            item->kind = HAFL_MP_FLOAT;
            if (n == 4) {
                uint32_t b32 = (uint32_t)bits;
                float f;
                memcpy(&f, &b32, 4);
                item->f = f;
            } else {
                memcpy(&item->f, &bits, 8);
                item->wide = 1;
            }
            break;
        }
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf: {
            int n = 1 << (tag - 0xcc);
            if ((size_t)n > left)
                return HAFL_MP_ETRUNCATED;
            item->kind = HAFL_MP_UINT;
            item->u = s_be(q, n);
            q += n;
            break;
        }
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            int n = 1 << (tag - 0xd0);
            if ((size_t)n > left)
                return HAFL_MP_ETRUNCATED;
            uint64_t raw = s_be(q, n);
            q += n;
            //  Sign-extend from n bytes without shifting into the sign bit.
            int64_t v;
            if (n == 8)
                memcpy(&v, &raw, 8);
            else {
                uint64_t sign = (uint64_t)1 << (8 * n - 1);
                v = (raw & sign) ? (int64_t)(raw - sign) - (int64_t)sign : (int64_t)raw;
            }
            if (v >= 0) {
                item->kind = HAFL_MP_UINT;
                item->u = (uint64_t)v;
            } else {
                item->kind = HAFL_MP_INT;
                item->i = v;
            }
            break;
        }
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            //  fixext 1/2/4/8/16: type byte then a fixed payload
            item->kind = HAFL_MP_EXT;
            item->len = 1u << (tag - 0xd4);
            payload = 2;
            break;
        case 0xd9:
        case 0xda:
        case 0xdb:
            item->kind = HAFL_MP_STR;
            width = 1 << (tag - 0xd9);
            payload = 1;
            break;
        case 0xdc:
        case 0xdd:
            item->kind = HAFL_MP_ARRAY;
            width = tag == 0xdc ? 2 : 4;
            break;
        case 0xde:
        case 0xdf:
            item->kind = HAFL_MP_MAP;
            width = tag == 0xde ? 2 : 4;
            break;
        default:
            return HAFL_MP_EINVALID; //  unreachable: every byte is covered above
        }

    if (width) {
        if (s_length(self, q, width, &item->len))
            return HAFL_MP_ETRUNCATED;
        q += width;
    }
    if (payload == 2) { //  ext: one signed type byte before the data
        if ((size_t)(self->end - q) < 1)
            return HAFL_MP_ETRUNCATED;
        item->ext_type = (int8_t)*q++;
    }
    if (payload) {
        if ((size_t)item->len > (size_t)(self->end - q))
            return HAFL_MP_ETRUNCATED;
        item->ptr = q;
        q += item->len;
    }
    self->p = q;
    return HAFL_MP_OK;
}

int hafl_mpreader_skip(hafl_mpreader_t *self, int max_depth)
{
    if (max_depth < 0)
        return HAFL_MP_EDEPTH;
    hafl_mp_item_t item;
    int rc = hafl_mpreader_next(self, &item);
    if (rc)
        return rc;
    if (item.kind == HAFL_MP_ARRAY || item.kind == HAFL_MP_MAP) {
        //  Each element takes at least one byte, so a huge declared count ends in ETRUNCATED
        //  after at most `remaining` iterations.
        uint64_t n = item.kind == HAFL_MP_MAP ? 2 * (uint64_t)item.len : item.len;
        for (uint64_t i = 0; i < n; i++)
            if ((rc = hafl_mpreader_skip(self, max_depth - 1)))
                return rc;
    }
    return HAFL_MP_OK;
}
