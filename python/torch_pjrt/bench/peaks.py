"""Peak FLOP/s of the machine the suite runs on, with the arithmetic shown:
the CPU's from core count, vector width, FMA units and the kernel-measured
clock; a GPU's from a table of vendor datasheet figures (dense, no sparsity)
looked up by device name, or measured with a large matmul when the name is not
in the table."""
from __future__ import annotations

import os


def cpu_peak():
    """Peak FLOP/s from core count, vector width, FMA units and clock."""
    flags, mhz, model = set(), [], "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            k = k.strip()
            if k == "flags":
                flags = set(v.split())
            elif k == "cpu MHz":
                mhz.append(float(v))
            elif k == "model name":
                model = v.strip()
    cores = len(os.sched_getaffinity(0))
    lanes = 16 if "avx512f" in flags else (8 if "avx2" in flags else 4)
    fma_units = 2 if "fma" in flags else 1
    ghz = (sum(mhz) / len(mhz) / 1000.0) if mhz else 0.0
    per_cycle = lanes * fma_units * 2  # an FMA is 2 FLOPs
    peak = cores * per_cycle * ghz * 1e9
    text = (f"{model}: {cores} cores x {lanes} f32 lanes ({'AVX-512' if lanes == 16 else 'AVX2'}) x "
            f"{fma_units} FMA units x 2 FLOP/FMA x {ghz:.2f} GHz (kernel-measured clock, /proc/cpuinfo) "
            f"= {peak / 1e9:.1f} GFLOP/s f32. No native bf16 FMA "
            f"({'avx512_bf16' if 'avx512_bf16' in flags else 'none'}): bf16 peak taken equal to f32.")
    return {"float32": peak, "bfloat16": peak}, text


# Dense TFLOP/s from the vendors' datasheets: (name fragment, f32 (non-tensor),
# tf32 tensor, bf16 tensor; None where the part has no such unit). The first
# fragment found in the device name wins, so longer names come first.
GPU_PEAKS_TFLOPS = [
    ("H100 PCIe", 51.2, 378.0, 756.0),
    ("H100 NVL", None, None, None),  # figures differ from SXM: measured instead
    ("H100", 66.9, 494.7, 989.4),
    ("H200", 66.9, 494.7, 989.4),
    ("GH200", 66.9, 494.7, 989.4),
    ("A100", 19.5, 156.0, 312.0),
    ("L40S", 91.6, 183.0, 362.0),
    ("L4", 30.3, 60.0, 121.0),
    ("V100", 15.7, None, None),
    ("T4", 8.1, None, None),
]


def gpu_peak_from_name(name):
    """{dtype: FLOP/s} and the text for a device name, or (None, reason) when
    the table has no entry. float32 is the TF32 tensor-core peak when the part
    has one (the suite allows TF32 on every system), else its FP32 peak."""
    for frag, f32, tf32, bf16 in GPU_PEAKS_TFLOPS:
        if frag.lower() in name.lower():
            if f32 is None:
                break
            peaks = {"float32": (tf32 or f32) * 1e12, "bfloat16": (bf16 or f32) * 1e12}
            text = (f"{name}: datasheet dense peaks (table entry {frag!r}): FP32 {f32} TFLOP/s, "
                    f"TF32 tensor {tf32 if tf32 else 'n/a'} TFLOP/s, BF16 tensor "
                    f"{bf16 if bf16 else 'n/a'} TFLOP/s; f32 rows use "
                    f"{'TF32' if tf32 else 'FP32'} (TF32 is allowed on every system).")
            return peaks, text
    return None, f"{name}: not in the datasheet table"


def gpu_peak_measured(n=8192, reps=10):
    """Best achieved FLOP/s of PyTorch CUDA matmuls (a lower bound on peak)."""
    import time

    import torch
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        a @ b
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        out[str(dtype).replace("torch.", "")] = 2 * n ** 3 / best
    return out


def gpu_peak():
    import torch
    name = torch.cuda.get_device_name(0)
    peaks, text = gpu_peak_from_name(name)
    if peaks is None:
        peaks = gpu_peak_measured()
        text += (f"; measured instead with {8192}^2 PyTorch matmuls: f32 "
                 f"{peaks['float32'] / 1e12:.1f} TFLOP/s, bf16 {peaks['bfloat16'] / 1e12:.1f} "
                 f"TFLOP/s (achieved, so a lower bound on the peak)")
    return peaks, text
