"""The compiled fast path: blocks of records parsed and learned by C kernels.

``spec`` is the kernels' Python specification (``_kernels.c`` renders it line for line);
``block`` learns blocks of plain CSV lines, ``jsonblock`` blocks of JSON values.
"""
