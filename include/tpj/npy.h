/* tpj/npy.h: NumPy .npy files (format 1.0-3.0) for tpj-run's inputs and
 * outputs. Only little-endian (or byte-sized) C-order arrays of the dtypes
 * in the dtype table are accepted; everything else is refused with a clear
 * error, never guessed. */
#ifndef TPJ_NPY_H_
#define TPJ_NPY_H_

#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"
#include "tpj/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parses an .npy image held in memory. On success *out_view describes it
 * with data pointing into `bytes` (borrowed, not copied). INVALID_ARGUMENT
 * naming the field for a bad magic or version, a header that is not a
 * Python dict literal of exactly 'descr', 'fortran_order' and 'shape', a
 * big-endian or unknown descr, fortran_order True, a negative or
 * overflowing shape, or a data size that does not match the header. */
tpj_status_t tpj_npy_parse(const uint8_t* bytes, size_t len,
                           tpj_host_tensor_t* out_view) TPJ_MUST_USE;

/* Reads the file at `path`; out_tensor->data is malloc'ed (free with
 * tpj_host_tensor_free). Errors are annotated with the path. */
tpj_status_t tpj_npy_load(const char* path, tpj_host_tensor_t* out_tensor) TPJ_MUST_USE;

/* Writes `tensor` as an .npy file (format 1.0, little-endian, C order). */
tpj_status_t tpj_npy_save(const char* path, const tpj_host_tensor_t* tensor) TPJ_MUST_USE;

/* Dtype spellings ("<f4", "|b1") come from the one dtype table:
 * tpj_dtype_npy_descr and tpj_dtype_from_npy_descr (tpj/ir.h). */

#ifdef __cplusplus
}
#endif

#endif /* TPJ_NPY_H_ */
