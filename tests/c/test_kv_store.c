/* test_kv_store.c: clients created with a key-value store (src/pjrt/kv_store.c)
 * against the fake plugin, which, given num_nodes > 1, exchanges its topology
 * through the store as multi-process plugins do: two nodes in two threads see
 * each other, a missing peer is a clean DEADLINE_EXCEEDED, a store's error
 * comes back with its code, and nothing leaks (LSan).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tpj/pjrt.h"
#include "tpj_test.h"

/* An in-memory store: up to 16 keys, guarded by a mutex, with a condition
 * variable for get's wait. */
typedef struct mem_store_s {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char keys[16][64];
  char values[16][64];
  int n;
  int gets, puts, released;
  bool fail_put;
} mem_store_t;

static int find(mem_store_t* s, const char* key, size_t key_size) {
  for (int i = 0; i < s->n; ++i)
    if (strlen(s->keys[i]) == key_size && !memcmp(s->keys[i], key, key_size)) return i;
  return -1;
}

static tpj_status_t mem_put(void* user, const char* key, size_t key_size, const char* value,
                            size_t value_size) {
  mem_store_t* s = (mem_store_t*)user;
  if (s->fail_put) return TPJ_STATUS(UNAVAILABLE, "store: the server went away");
  if (key_size >= 64 || value_size >= 64) return TPJ_STATUS(INVALID_ARGUMENT, "store: too long");
  pthread_mutex_lock(&s->mu);
  int i = find(s, key, key_size);
  if (i < 0 && s->n < 16) i = s->n++;
  memcpy(s->keys[i], key, key_size);
  s->keys[i][key_size] = 0;
  memcpy(s->values[i], value, value_size);
  s->values[i][value_size] = 0;
  s->puts++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static tpj_status_t mem_get(void* user, const char* key, size_t key_size, int timeout_ms,
                            char** out_value, size_t* out_size) {
  mem_store_t* s = (mem_store_t*)user;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&s->mu);
  s->gets++;
  int i;
  while ((i = find(s, key, key_size)) < 0) {
    if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != 0) {
      pthread_mutex_unlock(&s->mu);
      return TPJ_STATUS(DEADLINE_EXCEEDED, "store: key %.*s not set within %d ms",
                        (int)key_size, key, timeout_ms);
    }
  }
  *out_size = strlen(s->values[i]);
  *out_value = (char*)malloc(*out_size + 1);
  memcpy(*out_value, s->values[i], *out_size + 1);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void mem_release(void* user) { ((mem_store_t*)user)->released++; }

static void mem_init(mem_store_t* s) {
  memset(s, 0, sizeof(*s));
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
}

static void mem_destroy(mem_store_t* s) {
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
}

typedef struct node_s {
  mem_store_t* store;
  int node_id, num_nodes, timeout_ms;
  tpj_status_t status;
  tpj_client_t* client;
} node_t;

static void* create_node(void* arg) {
  node_t* n = (node_t*)arg;
  tpj_plugin_t* p = NULL;
  n->status = tpj_plugin_load(getenv("TPJ_FAKE_PLUGIN"), &p);
  if (n->status) return NULL;
  tpj_option_t o[3] = {
      {.name = "node_id", .kind = TPJ_OPTION_KIND_INT64, .int_value = n->node_id},
      {.name = "num_nodes", .kind = TPJ_OPTION_KIND_INT64, .int_value = n->num_nodes},
      {.name = "fake_kv_timeout_ms", .kind = TPJ_OPTION_KIND_INT64, .int_value = n->timeout_ms},
  };
  tpj_kv_store_t kv = {.get = mem_get, .put = mem_put, .user = n->store,
                       .release = mem_release};
  n->status = tpj_client_create_with_store(p, o, 3, n->store ? &kv : NULL, &n->client);
  return NULL;
}

TPJ_TEST(two_nodes_exchange_through_the_store) {
  mem_store_t s;
  mem_init(&s);
  node_t nodes[2] = {{&s, 0, 2, 5000, NULL, NULL}, {&s, 1, 2, 5000, NULL, NULL}};
  pthread_t t[2];
  for (int i = 0; i < 2; ++i) pthread_create(&t[i], NULL, create_node, &nodes[i]);
  for (int i = 0; i < 2; ++i) pthread_join(t[i], NULL);
  for (int i = 0; i < 2; ++i) {
    TPJ_EXPECT_OK(nodes[i].status);
    TPJ_EXPECT(nodes[i].client != NULL);
  }
  if (nodes[0].client && nodes[1].client) {
    TPJ_EXPECT(strstr(tpj_client_platform_version(nodes[0].client),
                      "node=0/2 peers=node1:2dev") != NULL);
    TPJ_EXPECT(strstr(tpj_client_platform_version(nodes[1].client),
                      "node=1/2 peers=node0:2dev") != NULL);
  }
  TPJ_EXPECT(s.puts == 2 && s.gets == 2);
  for (int i = 0; i < 2; ++i) tpj_client_destroy(nodes[i].client);
  TPJ_EXPECT(s.released == 2);
  mem_destroy(&s);
}

TPJ_TEST(a_missing_peer_is_a_deadline_not_a_hang) {
  mem_store_t s;
  mem_init(&s);
  node_t n = {&s, 0, 2, 50, NULL, NULL};
  create_node(&n);
  TPJ_EXPECT_ERROR(n.status, DEADLINE_EXCEEDED, "key fake/topology/1 not set within 50 ms");
  TPJ_EXPECT(n.client == NULL);
  TPJ_EXPECT(s.released == 1); /* the failed client released its store */
  mem_destroy(&s);
}

TPJ_TEST(store_errors_keep_their_code) {
  mem_store_t s;
  mem_init(&s);
  s.fail_put = true;
  node_t n = {&s, 1, 2, 50, NULL, NULL};
  create_node(&n);
  TPJ_EXPECT_ERROR(n.status, UNAVAILABLE, "store: the server went away");
  mem_destroy(&s);
}

TPJ_TEST(store_arguments_are_checked) {
  node_t n = {NULL, 0, 2, 50, NULL, NULL};
  create_node(&n); /* no store: the plugin says it needs one */
  TPJ_EXPECT_ERROR(n.status, INVALID_ARGUMENT, "needs the key-value store callbacks");
  tpj_plugin_t* p = NULL;
  TPJ_EXPECT_OK(tpj_plugin_load(getenv("TPJ_FAKE_PLUGIN"), &p));
  tpj_kv_store_t half = {.get = mem_get};
  tpj_client_t* c = NULL;
  mem_store_t s;
  mem_init(&s);
  half.user = &s;
  half.release = mem_release;
  TPJ_EXPECT_ERROR(tpj_client_create_with_store(p, NULL, 0, &half, &c), INVALID_ARGUMENT,
                   "get and put are required (got get set, put NULL)");
  TPJ_EXPECT(s.released == 1); /* taken, also on error */
  mem_destroy(&s);
  TPJ_EXPECT(c == NULL);
  node_t bad = {NULL, 3, 2, 50, NULL, NULL};
  create_node(&bad);
  TPJ_EXPECT_ERROR(bad.status, INVALID_ARGUMENT, "node_id 3 outside 0..1");
}

TPJ_TEST_MAIN("kv_store")
