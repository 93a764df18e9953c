"""The C extension only; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # The fast path's loops (CSV parsing, the sgd update with River's metrics, ADWIN),
        # built by pip with the machine's C compiler. No fused multiply-add and no fast-math:
        # every float operation rounds as Python's does (the tests compare the bits).
        Extension(
            "streamlearn.fast._kernels",
            sources=["daemon/fast/_kernels.c"],
            extra_compile_args=["-O2", "-ffp-contract=off", "-fno-fast-math", "-std=c11", "-Wall"],
        )
    ]
)
