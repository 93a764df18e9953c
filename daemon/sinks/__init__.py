"""Where dead letters and predictions go: JSON Lines files and Kafka topics."""
