"""How big a tree model has grown, for ``inspect``: River's Hoeffding trees and their forests.

River's trees declare their size (``HoeffdingTree.n_nodes``, ``n_leaves``, ``height``); a
forest is an ``Ensemble`` of them. Other models have no size to show.
"""

from __future__ import annotations

import sys

__all__ = ["tree_size"]


def tree_size(model: object) -> dict[str, int] | None:
    """Trees, nodes, leaves and the greatest height of a River tree or forest; else None.

    >>> from river import tree
    >>> learner = tree.HoeffdingTreeRegressor()
    >>> for i in range(400):
    ...     learner.learn_one({"x": float(i % 20)}, float(i % 20 > 9))
    >>> size = tree_size(learner)
    >>> size["trees"], size["nodes"] >= 1, size["leaves"] >= 1
    (1, True, True)
    >>> tree_size(object()) is None
    True
    """
    if not type(model).__module__.startswith("river."):
        return None  # no River import for a model that is none of River's
    if "river.tree.hoeffding_tree" not in sys.modules:
        # No Hoeffding tree was ever made here (its class is defined there): no import of
        # ``river.tree`` (most of a second) for a linear model's summary.
        return None
    from river.base import Ensemble
    from river.tree.hoeffding_tree import HoeffdingTree

    if isinstance(model, HoeffdingTree):
        trees = [model]
    elif isinstance(model, Ensemble) and all(isinstance(m, HoeffdingTree) for m in model):
        trees = list(model)
    else:
        return None
    if not trees:
        return None
    return {
        "trees": len(trees),
        "nodes": sum(t.n_nodes or 0 for t in trees),
        "leaves": sum(t.n_leaves or 0 for t in trees),
        "height": max(t.height or 0 for t in trees),
    }
