/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SHA-256 (FIPS 180-4), streaming: init, update any number of times, final.
 * Used to verify the content digests of registry manifests and blobs while
 * they download.  A context is plain data in the caller's storage; it is
 * not thread-safe and needs no cleanup.
 */
#ifndef MI_CORE_SHA256_H
#define MI_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define MI_SHA256_BYTES   32
#define MI_SHA256_HEX_LEN 64 /* lower-case hex digits, without the NUL */

typedef struct mi_sha256 {
    uint32_t state[8];
    uint64_t n_bytes;    /* total length so far */
    uint8_t  block[64];  /* partial block */
    size_t   n_block;    /* bytes used in block */
} mi_sha256;

/* Starts a new hash in the caller's storage. */
void mi_sha256_init(mi_sha256 *ctx);
/* Adds n bytes of data (borrowed; NULL only with n == 0). */
void mi_sha256_update(mi_sha256 *ctx, const void *data, size_t n);
/* Writes the 32-byte digest; ctx must be initialised again before reuse. */
void mi_sha256_final(mi_sha256 *ctx, uint8_t out[MI_SHA256_BYTES]);
/* Writes the digest as 64 lower-case hex digits plus a NUL. */
void mi_sha256_final_hex(mi_sha256 *ctx, char out[MI_SHA256_HEX_LEN + 1]);
/* One-shot: hex digest of n bytes of data. */
void mi_sha256_hex(const void *data, size_t n,
                   char out[MI_SHA256_HEX_LEN + 1]);

#endif /* MI_CORE_SHA256_H */
