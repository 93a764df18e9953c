"""Classification: class labels and their codes (``space``), the task of a model (``task``).

A classifier's records carry the class **code** as ``Record.y`` (a float: 0.0, 1.0, ...);
:class:`streamlearn.classify.space.ClassSpace` turns label text into codes and back.
"""

from __future__ import annotations
