"""The compiled fast path: blocks of records parsed and learned by C kernels.

The kernels' Python specification lives beside them, line for line.
"""
