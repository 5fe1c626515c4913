"""
Fast paths: accelerations of model.py, never its definition.

- build.py:       compiles and loads cpu.c (on first use, cached per user); C_KERNELS=0 turns it off.
- cpu.c:          the CPU's C loops: minGRU's and minLSTM's cells, the causal conv, the linear scan.
- cells.py:       cpu.c's cells and conv as autograd Functions.
- fastpath.py:    runs a cell or the conv only where it checks out against model.py's definition (once per
                  definition and dtype); otherwise model.py's code runs, and one warning says so.
- triton_scan.py: the linear scan as Triton kernels, scan.py's "triton" backend on CUDA.
- hgrn.py:        minGRU's and minLSTM's scan on CUDA by fla-core's HGRN kernels, where it is installed (through
                  fastpath.py, checked like cpu.c's cells).
"""
