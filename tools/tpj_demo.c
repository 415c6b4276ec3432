/* tpj_demo: the C half of `make demo`. Loads the selected PJRT plugin, lists
 * its devices and versions, builds `main(a, b) = (a * b + 1, sum(a * b + 1))`
 * with the C builder, compiles and runs it, and prints the result. No Python. */
#include <stdio.h>
#include <stdlib.h>

#include "tpj/emit.h"
#include "tpj/ir.h"
#include "tpj/pjrt.h"

static tpj_status_t demo_build(tpj_graph_t* g) {
  tpj_type_t t;
  int64_t dims[2] = {2, 3};
  TPJ_RETURN_IF_ERROR(tpj_type_init(TPJ_DTYPE_F32, dims, 2, &t));
  tpj_value_t a, b, prod, one, y, total;
  TPJ_RETURN_IF_ERROR(tpj_graph_add_param(g, &t, &a));
  TPJ_RETURN_IF_ERROR(tpj_graph_add_param(g, &t, &b));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, a, b, &prod));
  TPJ_RETURN_IF_ERROR(tpj_build_splat(g, TPJ_DTYPE_F32, dims, 2, 1.0, &one));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, prod, one, &y));
  int64_t all[2] = {0, 1};
  TPJ_RETURN_IF_ERROR(tpj_build_reduce_simple(g, y, TPJ_REDUCE_KIND_ADD, all, 2, &total));
  tpj_value_t results[2] = {y, total};
  return tpj_graph_set_results(g, results, 2);
}

static void demo_print_info(tpj_plugin_t* plugin, tpj_client_t* client) {
  tpj_plugin_info_t info;
  tpj_plugin_get_info(plugin, &info);
  printf("plugin: %s\n", info.path);
  printf("  pjrt api %d.%d, xla version %lld, stablehlo %lld.%lld.%lld (minimum %lld.%lld.%lld)\n",
         info.api_major, info.api_minor, (long long)info.xla_version,
         (long long)info.stablehlo_current[0], (long long)info.stablehlo_current[1],
         (long long)info.stablehlo_current[2], (long long)info.stablehlo_minimum[0],
         (long long)info.stablehlo_minimum[1], (long long)info.stablehlo_minimum[2]);
  printf("platform: %s (%s)\n", tpj_client_platform_name(client),
         tpj_client_platform_version(client));
  size_t n = tpj_client_addressable_device_count(client);
  for (size_t i = 0; i < n; ++i) {
    tpj_device_info_t d;
    tpj_status_t s = tpj_client_device_info(client, i, &d);
    if (s) { tpj_status_free(s); continue; }
    printf("  device %zu: id=%d kind=%s\n", i, d.id, d.kind);
  }
}

static tpj_status_t demo_execute(tpj_client_t* client, const char* text, size_t len) {
  float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {0.5f, -1, 2, 0, 1.5f, -2};
  int64_t dims[2] = {2, 3};
  tpj_executable_t* exe = NULL;
  tpj_buffer_t* args[2] = {NULL, NULL};
  tpj_buffer_t* outs[2] = {NULL, NULL};
  tpj_status_t s = tpj_executable_compile(client, text, len, NULL, &exe);
  if (!s) s = tpj_buffer_from_host(client, a, TPJ_DTYPE_F32, dims, 2, 0, TPJ_HOST_SEMANTICS_COPY, &args[0]);
  if (!s) s = tpj_buffer_from_host(client, b, TPJ_DTYPE_F32, dims, 2, 0, TPJ_HOST_SEMANTICS_COPY, &args[1]);
  if (!s) {
    tpj_execute_args_t ea = {args, 2, 1, NULL, outs, NULL, 0};
    s = tpj_executable_execute(exe, &ea);
  }
  float y[6], total = 0;
  if (!s) s = tpj_buffer_to_host(outs[0], y, sizeof(y));
  if (!s) s = tpj_buffer_to_host(outs[1], &total, sizeof(total));
  if (!s) {
    printf("main(a, b) = a * b + 1 -> [");
    for (int i = 0; i < 6; ++i) printf("%s%g", i ? ", " : "", y[i]);
    printf("], sum = %g (expected 6)\n", total);
  }
  for (int i = 0; i < 2; ++i) { tpj_buffer_destroy(args[i]); tpj_buffer_destroy(outs[i]); }
  tpj_executable_destroy(exe);
  return s;
}

int main(void) {
  char* path = NULL;
  tpj_plugin_t* plugin = NULL;
  tpj_client_t* client = NULL;
  tpj_graph_t* g = NULL;
  char* text = NULL;
  size_t len = 0;
  tpj_status_t s = tpj_plugin_resolve(NULL, NULL, 0, &path);
  if (!s) s = tpj_plugin_load(path, &plugin);
  if (!s) s = tpj_client_create(plugin, NULL, 0, &client);
  if (!s) demo_print_info(plugin, client);
  if (!s) s = tpj_graph_create(&g);
  if (!s) s = demo_build(g);
  if (!s) s = tpj_emit_stablehlo(g, &text, &len);
  if (!s) printf("stablehlo built by the C builder:\n%s\n", text);
  if (!s) s = demo_execute(client, text, len);
  int rc = 0;
  if (s) {
    fprintf(stderr, "tpj_demo: [%s] %s\n", tpj_status_code_name(tpj_status_code(s)),
            tpj_status_message(s));
    tpj_status_free(s);
    rc = 1;
  }
  free(text);
  tpj_graph_destroy(g);
  tpj_client_destroy(client);
  free(path);
  return rc;
}
