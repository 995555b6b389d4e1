"""What the CLI runs, above the judges: train a judge (with k-fold cross-validation), predict with a
saved one. Each job takes its config and returns a summary; the CLI only parses flags and prints."""
