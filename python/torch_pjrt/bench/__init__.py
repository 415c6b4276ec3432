"""Side-by-side benchmarks: PyTorch eager, Inductor, torch-pjrt and torchax.

Run with `make bench` or `python -m torch_pjrt.bench [--quick|--full]
[--models NAME ...]`. Nothing here asserts a time; every system's outputs are
checked against eager before it is timed, and a wrong system is reported as
wrong instead of timed.
"""
