"""Sources of raw records: files (replayed or followed) and Kafka topics."""
