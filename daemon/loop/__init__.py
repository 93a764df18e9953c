"""The run loop: take a batch from the chosen record path, learn it, checkpoint when due."""
