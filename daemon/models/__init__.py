"""Model layer: the spec registry, the seed's SGD regressor, the numpy MLP and transfer learning."""
