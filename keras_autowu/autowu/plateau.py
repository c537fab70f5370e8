"""The reference's reduce-on-plateau between warmup and cooldown, on each epoch's mean loss.

PyTorch's ReduceLROnPlateau with its defaults, as the reference uses it: a relative
threshold of 1e-4 and a patience of 5 epochs; the factor is AutoWU's
`decay_phase_factor`.
"""

import math

THRESHOLD = 1e-4
PATIENCE = 5


class ReduceOnPlateau:
    """Counts the epochs without a new best mean loss."""

    def __init__(self):
        self.best = math.inf
        self.bad_epochs = 0

    def reduces(self, mean_loss):
        """Records an epoch's mean loss; whether the learning rate is reduced now."""
        if mean_loss < self.best * (1.0 - THRESHOLD):
            self.best = mean_loss
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > PATIENCE:
            self.bad_epochs = 0
            return True
        return False
