"""Factor search: the learning rate moved by probes of the loss at a few multiples of it."""
