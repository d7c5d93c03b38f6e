/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SHA-256 as specified by FIPS 180-4, section 6.2: 64-byte blocks, a
 * 64-word message schedule, eight 32-bit working variables, and padding
 * with 0x80, zeros and the 64-bit big-endian bit length.
 */
#include "core/sha256.h"

#include <string.h>

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t
sha256_rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32u - n));
}

static void
sha256_block(mi_sha256 *ctx, const uint8_t *p)
{
    uint32_t w[64];
    uint32_t a, b, c, d, e, f, g, h;

    for (unsigned t = 0; t < 16; t++) {
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    }
    for (unsigned t = 16; t < 64; t++) {
        uint32_t s0 = sha256_rotr(w[t - 15], 7) ^ sha256_rotr(w[t - 15], 18) ^
                      (w[t - 15] >> 3);
        uint32_t s1 = sha256_rotr(w[t - 2], 17) ^ sha256_rotr(w[t - 2], 19) ^
                      (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    a = ctx->state[0];
    b = ctx->state[1];
    c = ctx->state[2];
    d = ctx->state[3];
    e = ctx->state[4];
    f = ctx->state[5];
    g = ctx->state[6];
    h = ctx->state[7];
    for (unsigned t = 0; t < 64; t++) {
        uint32_t s1  = sha256_rotr(e, 6) ^ sha256_rotr(e, 11) ^
                       sha256_rotr(e, 25);
        uint32_t ch  = (e & f) ^ (~e & g);
        uint32_t t1  = h + s1 + ch + sha256_k[t] + w[t];
        uint32_t s0  = sha256_rotr(a, 2) ^ sha256_rotr(a, 13) ^
                       sha256_rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2  = s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    ctx->state[0] += a;
    ctx->state[1] += b;
    ctx->state[2] += c;
    ctx->state[3] += d;
    ctx->state[4] += e;
    ctx->state[5] += f;
    ctx->state[6] += g;
    ctx->state[7] += h;
}

void
mi_sha256_init(mi_sha256 *ctx)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                   0xa54ff53a, 0x510e527f, 0x9b05688c,
                                   0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->state, h0, sizeof(h0));
    ctx->n_bytes = 0;
    ctx->n_block = 0;
}

void
mi_sha256_update(mi_sha256 *ctx, const void *data, size_t n)
{
    const uint8_t *p = data;

    ctx->n_bytes += n;
    if (ctx->n_block > 0) {
        size_t take = 64 - ctx->n_block;
        if (take > n) {
            take = n;
        }
        memcpy(ctx->block + ctx->n_block, p, take);
        ctx->n_block += take;
        p += take;
        n -= take;
        if (ctx->n_block < 64) {
            return;
        }
        sha256_block(ctx, ctx->block);
        ctx->n_block = 0;
    }
    while (n >= 64) {
        sha256_block(ctx, p);
        p += 64;
        n -= 64;
    }
    if (n > 0) {
        memcpy(ctx->block, p, n);
        ctx->n_block = n;
    }
}

void
mi_sha256_final(mi_sha256 *ctx, uint8_t out[MI_SHA256_BYTES])
{
    uint64_t bits = ctx->n_bytes * 8u;
    uint8_t  pad[72];
    size_t   n_pad = (ctx->n_block < 56 ? 56 : 120) - ctx->n_block;

    memset(pad, 0, sizeof(pad));
    pad[0] = 0x80;
    for (unsigned i = 0; i < 8; i++) {
        pad[n_pad + i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    /* The padding must not count towards the length it encodes. */
    mi_sha256_update(ctx, pad, n_pad + 8);
    for (unsigned i = 0; i < 8; i++) {
        out[4 * i]     = (uint8_t)(ctx->state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
        out[4 * i + 3] = (uint8_t)ctx->state[i];
    }
}

void
mi_sha256_final_hex(mi_sha256 *ctx, char out[MI_SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t           d[MI_SHA256_BYTES];

    mi_sha256_final(ctx, d);
    for (unsigned i = 0; i < MI_SHA256_BYTES; i++) {
        out[2 * i]     = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[MI_SHA256_HEX_LEN] = '\0';
}

void
mi_sha256_hex(const void *data, size_t n, char out[MI_SHA256_HEX_LEN + 1])
{
    mi_sha256 ctx;
    mi_sha256_init(&ctx);
    mi_sha256_update(&ctx, data, n);
    mi_sha256_final_hex(&ctx, out);
}
