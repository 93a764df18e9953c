"""Labels that are not in the record: the late-label join and the pseudo-labeling side loop."""
