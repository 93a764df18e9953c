"""streamlearn: a streaming online-learning daemon built on River.

Importing the package is cheap on purpose: the CLI imports only what the chosen
source, model and features need.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
