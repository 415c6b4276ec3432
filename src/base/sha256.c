/* sha256.c: SHA-256 (FIPS 180-4) for the keys and checksums of the persistent
 * compile cache, where a 64-bit hash could collide and load the wrong program.
 * Written here rather than linked from libcrypto so the wheel stays
 * self-contained (no system OpenSSL version to match at import time). */
#include <string.h>

#include "tpj/base.h"

static const uint32_t kRound[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u,
    0x923f82a4u, 0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u,
    0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u,
    0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,
    0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au,
    0x5b9cca4fu, 0x682e6ff3u, 0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

/* One 64-byte block into the state (FIPS 180-4 section 6.2.2). */
static void compress(uint32_t state[8], const uint8_t block[64]) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
           (uint32_t)block[4 * i + 2] << 8 | (uint32_t)block[4 * i + 3];
  }
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                  kRound[i] + w[i];
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
}

void tpj_sha256_init(tpj_sha256_t* ctx) {
  static const uint32_t kInit[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                    0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
  memcpy(ctx->state, kInit, sizeof(kInit));
  ctx->total_len = 0;
  ctx->block_len = 0;
}

void tpj_sha256_update(tpj_sha256_t* ctx, const void* data, size_t len) {
  const uint8_t* p = (const uint8_t*)data;
  ctx->total_len += len;
  if (ctx->block_len > 0) {
    size_t take = 64 - ctx->block_len < len ? 64 - ctx->block_len : len;
    memcpy(ctx->block + ctx->block_len, p, take);
    ctx->block_len += take;
    p += take;
    len -= take;
    if (ctx->block_len < 64) return;
    compress(ctx->state, ctx->block);
    ctx->block_len = 0;
  }
  for (; len >= 64; p += 64, len -= 64) compress(ctx->state, p);
  memcpy(ctx->block, p, len);
  ctx->block_len = len;
}

void tpj_sha256_final(tpj_sha256_t* ctx, tpj_digest_t* out_digest) {
  uint64_t bits = ctx->total_len * 8;
  uint8_t pad[72] = {0x80};
  /* 0x80, zeros up to 56 mod 64, then the 64-bit big-endian bit length. */
  size_t pad_len = ctx->block_len < 56 ? 56 - ctx->block_len : 120 - ctx->block_len;
  for (int i = 0; i < 8; ++i) pad[pad_len + i] = (uint8_t)(bits >> (56 - 8 * i));
  tpj_sha256_update(ctx, pad, pad_len + 8);
  for (int i = 0; i < 8; ++i) {
    out_digest->bytes[4 * i] = (uint8_t)(ctx->state[i] >> 24);
    out_digest->bytes[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
    out_digest->bytes[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
    out_digest->bytes[4 * i + 3] = (uint8_t)ctx->state[i];
  }
}

void tpj_sha256_bytes(const void* data, size_t len, tpj_digest_t* out_digest) {
  tpj_sha256_t ctx;
  tpj_sha256_init(&ctx);
  tpj_sha256_update(&ctx, data, len);
  tpj_sha256_final(&ctx, out_digest);
}

void tpj_digest_format_hex(const tpj_digest_t* digest, tpj_digest_hex_t* out_hex) {
  static const char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof(digest->bytes); ++i) {
    out_hex->text[2 * i] = kHex[digest->bytes[i] >> 4];
    out_hex->text[2 * i + 1] = kHex[digest->bytes[i] & 15];
  }
  out_hex->text[2 * sizeof(digest->bytes)] = '\0';
}

bool tpj_digest_equal(const tpj_digest_t* a, const tpj_digest_t* b) {
  return memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}
