"""Model layer: the spec registry, the textbook SGD regressor, the numpy MLP, transfer learning."""
