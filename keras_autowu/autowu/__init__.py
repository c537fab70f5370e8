"""AutoWU: an exponential warmup until a GP on the training loss says its minimum has passed, then a decay."""
