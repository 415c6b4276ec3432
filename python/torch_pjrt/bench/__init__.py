"""Side-by-side benchmarks: PyTorch eager, Inductor, torch-pjrt (compiled on
CPU tensors, compiled on pjrt-device tensors, and the eager pjrt device) and
torchax, plus the eager device's per-op overhead.

Run with `make bench` or `python -m torch_pjrt.bench [--quick|--full]
[--device cpu|cuda] [--models NAME ...]`. Nothing here asserts a time; every
system's outputs are checked against eager before it is timed, and a wrong
system is reported as wrong instead of timed. Rows of torch-pjrt that miss a
target get a profile (plugin execute, transfers, Python/framework) from the
runtime's counters in torch_pjrt.metrics().
"""
