/* Unit tests of the lowering table (lookup, names, not-found, result type
 * checks) and of the lower_util argument/value helpers, with the exact error
 * texts other code and users rely on. No device needed. */
#include <math.h>
#include <string.h>

#include "lower/lower_util.h"
#include "tpj/lower.h"
#include "tpj_test.h"

static tpj_arg_t arg_tensor(tpj_value_t v) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_TENSOR;
  a.tensor = v;
  return a;
}
static tpj_arg_t arg_int(int64_t i) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_INT;
  a.i = i;
  return a;
}
static tpj_arg_t arg_float(double f) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_FLOAT;
  a.f = f;
  return a;
}
static tpj_arg_t arg_str(const char* s) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_STRING;
  a.str = s;
  return a;
}

static tpj_type_t type_of(tpj_dtype_t dtype, int64_t d0, int64_t d1, int rank) {
  tpj_type_t t = tpj_type_scalar(dtype);
  t.rank = rank;
  t.dims[0] = d0;
  t.dims[1] = d1;
  return t;
}

TPJ_TEST(table_names_sorted_unique_and_found) {
  size_t n = tpj_lower_op_count();
  TPJ_EXPECT(n > 100);
  TPJ_EXPECT(tpj_lower_op_name(n) == NULL);
  for (size_t i = 0; i < n; ++i) {
    const char* name = tpj_lower_op_name(i);
    TPJ_EXPECT(name && strncmp(name, "aten::", 6) == 0 && strchr(name + 6, '.'));
    TPJ_EXPECT(tpj_lower_is_supported(name));
    for (size_t j = i + 1; j < n; ++j) {
      if (strcmp(name, tpj_lower_op_name(j)) == 0) {
        fprintf(stderr, "  duplicate lowering row: %s\n", name);
        *failed = 1;
      }
    }
  }
  TPJ_EXPECT(tpj_lower_is_supported("aten::add.Tensor"));
  TPJ_EXPECT(!tpj_lower_is_supported("aten::add"));
  TPJ_EXPECT(!tpj_lower_is_supported("aten::add.Tensorx"));
  TPJ_EXPECT(!tpj_lower_is_supported(""));
  TPJ_EXPECT(!tpj_lower_is_supported(NULL));
}

TPJ_TEST(call_add_and_check_types) {
  tpj_graph_t* g = NULL;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t ta = type_of(TPJ_DTYPE_F32, 2, 3, 2), tb = type_of(TPJ_DTYPE_S64, 3, 0, 1);
  tpj_value_t a, b, out = TPJ_VALUE_NONE;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &ta, &a));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tb, &b));
  tpj_arg_t args[3] = {arg_tensor(a), arg_tensor(b), arg_int(2)};
  tpj_lower_call_t call = {"aten::add.Tensor", args, 3, &ta, 1};
  tpj_status_t s = tpj_lower_call(g, &call, &out);
  TPJ_EXPECT(s == NULL);
  tpj_status_free(s);
  TPJ_EXPECT(out >= 0 && tpj_type_equal(tpj_graph_value_type(g, out), &ta));

  /* not found */
  tpj_lower_call_t nf = {"aten::foo.bar", args, 3, &ta, 1};
  TPJ_EXPECT_ERROR(tpj_lower_call(g, &nf, &out), NOT_FOUND, "no lowering for aten::foo.bar");

  /* a lowering whose result ignores out_types: detected as INTERNAL */
  tpj_type_t wrong = type_of(TPJ_DTYPE_F64, 2, 3, 2);
  tpj_arg_t cargs[2] = {arg_tensor(a), {0}};
  tpj_lower_call_t clone = {"aten::clone.default", cargs, 2, &wrong, 1};
  TPJ_EXPECT_ERROR(tpj_lower_call(g, &clone, &out), INTERNAL,
                   "aten::clone.default: output 0: type mismatch (got tensor<2x3xf32>, "
                   "expected tensor<2x3xf64>)");
  TPJ_EXPECT(out == TPJ_VALUE_NONE);

  /* None expected where a value is produced */
  tpj_type_t none_t = tpj_type_scalar(TPJ_DTYPE_INVALID);
  tpj_lower_call_t clone_none = {"aten::clone.default", cargs, 2, &none_t, 1};
  TPJ_EXPECT_ERROR(tpj_lower_call(g, &clone_none, &out), INTERNAL,
                   "aten::clone.default: output 0: expected None");
  tpj_graph_destroy(g);
}

TPJ_TEST(call_argument_errors) {
  tpj_graph_t* g = NULL;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t t = type_of(TPJ_DTYPE_F32, 4, 0, 1);
  tpj_value_t a, out;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &a));
  tpj_arg_t args[3] = {arg_tensor(a), arg_tensor(a), arg_str("bogus")};
  tpj_lower_call_t div = {"aten::div.Tensor_mode", args, 3, &t, 1};
  TPJ_EXPECT_ERROR(tpj_lower_call(g, &div, &out), INVALID_ARGUMENT,
                   "aten::div.Tensor_mode: rounding_mode must be None, 'trunc' or 'floor' "
                   "(got 'bogus')");
  tpj_arg_t bad[2] = {arg_tensor(a), arg_str("x")};
  tpj_lower_call_t mul = {"aten::mul.Tensor", bad, 2, &t, 1};
  TPJ_EXPECT_ERROR(tpj_lower_call(g, &mul, &out), INVALID_ARGUMENT,
                   "aten::mul.Tensor: argument 1: wrong kind (got string, expected a tensor or "
                   "a number)");
  tpj_lower_call_t missing = {"aten::mul.Tensor", bad, 1, &t, 1};
  TPJ_EXPECT_ERROR(tpj_lower_call(g, &missing, &out), INVALID_ARGUMENT,
                   "aten::mul.Tensor: argument 1: missing");
  tpj_type_t t3 = type_of(TPJ_DTYPE_F32, 3, 0, 1);
  tpj_value_t c;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t3, &c));
  tpj_arg_t bc[2] = {arg_tensor(a), arg_tensor(c)};
  tpj_lower_call_t badb = {"aten::mul.Tensor", bc, 2, &t, 1};
  TPJ_EXPECT_ERROR(tpj_lower_call(g, &badb, &out), INVALID_ARGUMENT,
                   "aten::mul.Tensor: broadcast: cannot broadcast tensor<3xf32>: dim 0 has size 3 "
                   "(expected 1 or 4)");
  TPJ_EXPECT_ERROR(tpj_lower_call(NULL, &badb, &out), INVALID_ARGUMENT, "graph");
  tpj_graph_destroy(g);
}

TPJ_TEST(util_arguments) {
  int64_t list[2] = {3, -1};
  tpj_arg_t args[5] = {arg_int(7), arg_float(2.5), {0}, arg_str("tanh"), {0}};
  args[4].kind = TPJ_ARG_KIND_INT_LIST;
  args[4].ints = list;
  args[4].count = 2;
  tpj_lower_call_t call = {"aten::x.y", args, 5, NULL, 0};
  int64_t i = 0;
  double f = 0;
  bool b = false;
  const char* s = NULL;
  const int64_t* ints = NULL;
  size_t n = 9;
  TPJ_EXPECT_OK(tpj_lower_arg_int(&call, 0, &i));
  TPJ_EXPECT(i == 7);
  TPJ_EXPECT_OK(tpj_lower_arg_float(&call, 0, &f));
  TPJ_EXPECT(f == 7.0);
  TPJ_EXPECT_ERROR(tpj_lower_arg_int(&call, 1, &i), INVALID_ARGUMENT,
                   "aten::x.y: argument 1: wrong kind (got float, expected an int)");
  TPJ_EXPECT(tpj_lower_arg_is_none(&call, 2) && tpj_lower_arg_is_none(&call, 99));
  TPJ_EXPECT_OK(tpj_lower_arg_float_or(&call, 2, -1.5, &f));
  TPJ_EXPECT(f == -1.5);
  TPJ_EXPECT_OK(tpj_lower_arg_bool_or(&call, 2, true, &b));
  TPJ_EXPECT(b);
  TPJ_EXPECT_OK(tpj_lower_arg_string(&call, 3, &s));
  TPJ_EXPECT(s && strcmp(s, "tanh") == 0);
  TPJ_EXPECT_OK(tpj_lower_arg_string(&call, 2, &s));
  TPJ_EXPECT(s == NULL);
  TPJ_EXPECT_OK(tpj_lower_arg_int_list(&call, 4, &ints, &n));
  TPJ_EXPECT(n == 2 && ints[1] == -1);
  TPJ_EXPECT_OK(tpj_lower_arg_int_list(&call, 0, &ints, &n));
  TPJ_EXPECT(n == 1 && ints[0] == 7);
  TPJ_EXPECT_OK(tpj_lower_arg_int_list(&call, 2, &ints, &n));
  TPJ_EXPECT(n == 0);
  TPJ_EXPECT_ERROR(tpj_lower_arg_tensor(&call, 0, &(tpj_value_t){0}), INVALID_ARGUMENT,
                   "aten::x.y: argument 0: wrong kind (got int, expected a tensor)");
  TPJ_EXPECT_ERROR(tpj_lower_arg_tensor(&call, 5, &(tpj_value_t){0}), INVALID_ARGUMENT,
                   "aten::x.y: argument 5: missing, expected a tensor (got 5 arguments)");
  tpj_dtype_t d = TPJ_DTYPE_INVALID;
  TPJ_EXPECT_OK(tpj_lower_arg_dtype_or(&call, 2, TPJ_DTYPE_F32, &d));
  TPJ_EXPECT(d == TPJ_DTYPE_F32);
  TPJ_EXPECT_ERROR(tpj_lower_arg_dtype_or(&call, 1, TPJ_DTYPE_F32, &d), INVALID_ARGUMENT,
                   "argument 1: wrong kind (got float, expected a dtype)");
}

TPJ_TEST(util_dims_and_shapes) {
  tpj_lower_call_t call = {"aten::sum.dim_IntList", NULL, 0, NULL, 0};
  int64_t d = 0;
  TPJ_EXPECT_OK(tpj_lower_norm_dim(&call, -1, 2, &d));
  TPJ_EXPECT(d == 1);
  TPJ_EXPECT_OK(tpj_lower_norm_dim(&call, -1, 0, &d));
  TPJ_EXPECT(d == 0);
  TPJ_EXPECT_ERROR(tpj_lower_norm_dim(&call, 3, 2, &d), INVALID_ARGUMENT,
                   "aten::sum.dim_IntList: dim out of range (got 3, expected [-2, 1])");
  tpj_type_t a = type_of(TPJ_DTYPE_F32, 4, 1, 2), b = type_of(TPJ_DTYPE_F32, 3, 0, 1), r;
  TPJ_EXPECT_OK(tpj_lower_broadcast_shape(&call, &a, &b, &r));
  TPJ_EXPECT(r.rank == 2 && r.dims[0] == 4 && r.dims[1] == 3);
  tpj_type_t c = type_of(TPJ_DTYPE_F32, 2, 0, 1);
  TPJ_EXPECT_ERROR(tpj_lower_broadcast_shape(&call, &b, &c, &r), INVALID_ARGUMENT,
                   "aten::sum.dim_IntList: shapes cannot be broadcast (got tensor<3xf32> and "
                   "tensor<2xf32>)");
  TPJ_EXPECT(tpj_lower_out_type(&call, 0)->dtype == TPJ_DTYPE_INVALID);
}

TPJ_TEST(util_values) {
  tpj_graph_t* g = NULL;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t t = type_of(TPJ_DTYPE_S32, 3, 0, 1), want = type_of(TPJ_DTYPE_F32, 2, 3, 2);
  tpj_value_t x, y, z;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &x));
  TPJ_EXPECT_OK(tpj_lower_convert(g, x, TPJ_DTYPE_S32, &y));
  TPJ_EXPECT(y == x);
  TPJ_EXPECT_OK(tpj_lower_coerce(g, x, &want, &y));
  TPJ_EXPECT(tpj_type_equal(tpj_lower_type(g, y), &want));
  TPJ_EXPECT_OK(tpj_lower_convert(g, x, TPJ_DTYPE_PRED, &z));
  TPJ_EXPECT(tpj_lower_type(g, z)->dtype == TPJ_DTYPE_PRED);
  TPJ_EXPECT(tpj_lower_type(g, 12345)->dtype == TPJ_DTYPE_INVALID);
  tpj_type_t bad = type_of(TPJ_DTYPE_S32, 2, 0, 1);
  TPJ_EXPECT_ERROR(tpj_lower_coerce(g, x, &bad, &y), INVALID_ARGUMENT,
                   "broadcast: cannot broadcast tensor<3xi32>");
  int32_t region = -1;
  TPJ_EXPECT_OK(tpj_lower_reduce_body(g, TPJ_DTYPE_F32, TPJ_REDUCE_KIND_MAX, &region));
  TPJ_EXPECT(region >= 0);
  tpj_graph_destroy(g);
}

TPJ_TEST_MAIN("lower")
