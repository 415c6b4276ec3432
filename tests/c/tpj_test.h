/* tpj_test.h: the plain-C unit-test harness. Each test file is one binary:
 *   TPJ_TEST(name) { TPJ_EXPECT(cond); TPJ_EXPECT_OK(status_expr); }
 *   int main(void) { return tpj_test_run_all(); }  -- via TPJ_TEST_MAIN()
 * It prints one line per test and closes with "N passed, N failed"; more
 * than TPJ_MAX_TESTS tests in one binary fail it (exit 2) instead of running a
 * subset. */
#ifndef TPJ_TEST_H_
#define TPJ_TEST_H_

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/base.h"
#include "tpj/pjrt.h"

typedef void (*tpj_test_fn)(int* failed);
typedef struct { const char* name; tpj_test_fn fn; } tpj_test_case_t;

#define TPJ_MAX_TESTS 256
static tpj_test_case_t tpj_tests_[TPJ_MAX_TESTS];
static int tpj_num_tests_ = 0;
static int tpj_num_dropped_ = 0; /* registrations past TPJ_MAX_TESTS */

static inline void tpj_test_register(const char* name, tpj_test_fn fn) {
  if (tpj_num_tests_ < TPJ_MAX_TESTS) {
    tpj_tests_[tpj_num_tests_++] = (tpj_test_case_t){name, fn};
  } else {
    ++tpj_num_dropped_;
  }
}

#define TPJ_TEST(name)                                                   \
  static void tpj_test_##name(int* failed);                              \
  __attribute__((constructor)) static void tpj_register_##name(void) {   \
    tpj_test_register(#name, tpj_test_##name);                           \
  }                                                                      \
  static void tpj_test_##name(int* failed)

#define TPJ_EXPECT(cond)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "  %s:%d: expected %s\n", __FILE__, __LINE__, #cond);  \
      *failed = 1;                                                           \
    }                                                                        \
  } while (0)

/* Fails (and returns from the test) if the status is not OK; frees it. */
#define TPJ_EXPECT_OK(expr)                                                    \
  do {                                                                         \
    tpj_status_t s_ = (expr);                                                  \
    if (s_) {                                                                  \
      fprintf(stderr, "  %s:%d: %s failed: [%s] %s\n", __FILE__, __LINE__,     \
              #expr, tpj_status_code_name(tpj_status_code(s_)),                \
              tpj_status_message(s_));                                         \
      tpj_status_free(s_);                                                     \
      *failed = 1;                                                             \
      return;                                                                  \
    }                                                                          \
  } while (0)

/* Expects an error of the given code whose message contains `needle`. */
/* Expects an INVALID_ARGUMENT error whose message is exactly `want`. */
#define TPJ_EXPECT_MESSAGE(expr, want)                                                  \
  do {                                                                                  \
    tpj_status_t m_ = (expr);                                                           \
    if (!m_ || tpj_status_code(m_) != TPJ_STATUS_INVALID_ARGUMENT ||                    \
        strcmp(tpj_status_message(m_), (want)) != 0) {                                  \
      fprintf(stderr, "  %s:%d: got [%s] \"%s\", expected \"%s\"\n", __FILE__, __LINE__, \
              tpj_status_code_name(tpj_status_code(m_)), tpj_status_message(m_), (want)); \
      *failed = 1;                                                                      \
    }                                                                                   \
    tpj_status_free(m_);                                                                \
  } while (0)

#define TPJ_EXPECT_ERROR(expr, code, needle)                                     \
  do {                                                                           \
    tpj_status_t s_ = (expr);                                                    \
    if (!s_) {                                                                   \
      fprintf(stderr, "  %s:%d: %s unexpectedly succeeded\n", __FILE__, __LINE__, #expr); \
      *failed = 1;                                                               \
    } else {                                                                     \
      if (tpj_status_code(s_) != TPJ_STATUS_##code ||                            \
          !strstr(tpj_status_message(s_), (needle))) {                           \
        fprintf(stderr, "  %s:%d: %s: got [%s] \"%s\", expected [%s] containing \"%s\"\n", \
                __FILE__, __LINE__, #expr, tpj_status_code_name(tpj_status_code(s_)), \
                tpj_status_message(s_), #code, (needle));                        \
        *failed = 1;                                                             \
      }                                                                          \
      tpj_status_free(s_);                                                       \
    }                                                                            \
  } while (0)

/* Runs every test; a binary with more than TPJ_MAX_TESTS tests fails before
 * running any, so no test is ever silently skipped. */
static inline int tpj_test_run_all(const char* suite) {
  if (tpj_num_dropped_ > 0) {
    fprintf(stderr, "%s: too many tests (got %d, expected at most TPJ_MAX_TESTS = %d); "
            "raise TPJ_MAX_TESTS in tests/c/tpj_test.h or split the file\n", suite,
            tpj_num_tests_ + tpj_num_dropped_, TPJ_MAX_TESTS);
    return 2;
  }
  int passed = 0, nfailed = 0;
  for (int i = 0; i < tpj_num_tests_; ++i) {
    int failed = 0;
    tpj_tests_[i].fn(&failed);
    printf("%s %s.%s\n", failed ? "FAIL" : "ok  ", suite, tpj_tests_[i].name);
    if (failed) ++nfailed; else ++passed;
  }
  printf("%s: %d passed, %d failed\n", suite, passed, nfailed);
  return nfailed ? 1 : 0;
}

/* Creates a client of the "cpu" plugin found on $TORCH_PJRT_PLUGIN_PATH
 * (':'-separated directories, "." when unset). device_count > 0 passes the
 * plugin option cpu_device_count; 0 keeps the plugin's default. */
static inline TPJ_MUST_USE tpj_status_t tpj_test_cpu_client(int64_t device_count,
                                               tpj_client_t** out_client) {
  const char* env = getenv("TORCH_PJRT_PLUGIN_PATH");
  char* copy = strdup(env ? env : ".");
  if (!copy) return TPJ_STATUS(RESOURCE_EXHAUSTED, "test: out of memory");
  const char* dirs[32];
  size_t n = 0;
  for (char* tok = strtok(copy, ":"); tok && n < 32; tok = strtok(NULL, ":")) dirs[n++] = tok;
  char* path = NULL;
  tpj_status_t s = tpj_plugin_resolve("cpu", dirs, n, &path);
  free(copy);
  TPJ_RETURN_IF_ERROR(s);
  tpj_plugin_t* plugin = NULL;
  s = tpj_plugin_load(path, &plugin);
  free(path);
  TPJ_RETURN_IF_ERROR(s);
  tpj_option_t count = {.name = "cpu_device_count", .kind = TPJ_OPTION_KIND_INT64,
                        .int_value = device_count};
  return tpj_client_create(plugin, device_count > 0 ? &count : NULL, device_count > 0 ? 1 : 0,
                           out_client);
}

#define TPJ_TEST_MAIN(suite) \
  int main(void) { return tpj_test_run_all(suite); }

#endif /* TPJ_TEST_H_ */
