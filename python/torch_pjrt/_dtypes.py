"""torch dtype <-> tpj_dtype_t code, on its own so that _device.py (buffers)
and _aten.py (argument encoding) both use it without importing each other;
_aten.py re-exports it for the callers that know it from there.
"""
from __future__ import annotations

from typing import Dict

import torch

# torch dtype <-> tpj_dtype_t code (== PJRT_Buffer_Type).
DTYPE_TO_CODE: Dict[torch.dtype, int] = {
    torch.bool: 1,
    torch.int8: 2,
    torch.int16: 3,
    torch.int32: 4,
    torch.int64: 5,
    torch.uint8: 6,
    torch.uint16: 7,
    torch.uint32: 8,
    torch.uint64: 9,
    torch.float16: 10,
    torch.float32: 11,
    torch.float64: 12,
    torch.bfloat16: 13,
    torch.complex64: 14,
    torch.complex128: 15,
}
CODE_TO_DTYPE: Dict[int, torch.dtype] = {v: k for k, v in DTYPE_TO_CODE.items()}


def dtype_code(dtype: torch.dtype) -> int:
    """tpj_dtype_t code of a torch dtype; TypeError for unsupported dtypes."""
    try:
        return DTYPE_TO_CODE[dtype]
    except KeyError:
        raise TypeError(f"torch_pjrt: unsupported dtype {dtype}") from None


def code_dtype(code: int) -> torch.dtype:
    """torch dtype of a tpj_dtype_t code; TypeError for unknown codes."""
    try:
        return CODE_TO_DTYPE[int(code)]
    except KeyError:
        raise TypeError(f"torch_pjrt: unknown dtype code {code}") from None
