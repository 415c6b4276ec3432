/* test_sha256.c: the SHA-256 behind the persistent compile cache's keys,
 * checked against the FIPS 180-4 / NIST example vectors, including messages fed
 * in pieces that straddle block boundaries. */
#include <string.h>

#include "tpj/base.h"
#include "tpj_test.h"

static int hex_is(const tpj_digest_t* d, const char* want) {
  tpj_digest_hex_t hex;
  tpj_digest_format_hex(d, &hex);
  if (strcmp(hex.text, want) == 0) return 1;
  fprintf(stderr, "  got %s\n  expected %s\n", hex.text, want);
  return 0;
}

static const char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char k448Msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char k448[] = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
static const char kMillionA[] =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

TPJ_TEST(abc) {
  tpj_digest_t d;
  tpj_sha256_bytes("abc", 3, &d);
  TPJ_EXPECT(hex_is(&d, kAbc));
}

TPJ_TEST(empty_string) {
  tpj_digest_t d;
  tpj_sha256_bytes("", 0, &d);
  TPJ_EXPECT(hex_is(&d, kEmpty));
}

TPJ_TEST(two_block_448_bit_message) {
  TPJ_EXPECT(strlen(k448Msg) * 8 == 448);
  tpj_digest_t d;
  tpj_sha256_bytes(k448Msg, strlen(k448Msg), &d);
  TPJ_EXPECT(hex_is(&d, k448));
}

TPJ_TEST(one_million_a_in_uneven_pieces) {
  static char chunk[1024]; /* pieces are at most 1003 bytes */
  memset(chunk, 'a', sizeof(chunk));
  tpj_sha256_t ctx;
  tpj_sha256_init(&ctx);
  size_t done = 0, piece = 1;
  while (done < 1000000) {
    size_t n = piece < 1000000 - done ? piece : 1000000 - done;
    tpj_sha256_update(&ctx, chunk, n);
    done += n;
    piece = piece % 997 + 7; /* sizes that do not divide 64 */
  }
  tpj_digest_t d;
  tpj_sha256_final(&ctx, &d);
  TPJ_EXPECT(hex_is(&d, kMillionA));
}

TPJ_TEST(byte_at_a_time_equals_one_shot) {
  /* 0..199 bytes: every padding case (block_len < 56, 56..63, multiples of 64). */
  unsigned char msg[200];
  for (size_t i = 0; i < sizeof(msg); ++i) msg[i] = (unsigned char)(i * 31 + 7);
  for (size_t len = 0; len <= sizeof(msg); ++len) {
    tpj_digest_t one, many;
    tpj_sha256_bytes(msg, len, &one);
    tpj_sha256_t ctx;
    tpj_sha256_init(&ctx);
    for (size_t i = 0; i < len; ++i) tpj_sha256_update(&ctx, msg + i, 1);
    tpj_sha256_final(&ctx, &many);
    TPJ_EXPECT(tpj_digest_equal(&one, &many));
  }
  tpj_digest_t a, b;
  tpj_sha256_bytes("abc", 3, &a);
  tpj_sha256_bytes("abd", 3, &b);
  TPJ_EXPECT(!tpj_digest_equal(&a, &b));
}

TPJ_TEST_MAIN("sha256")
