"""
Title: A learning rate searched stage by stage: AutoLRS on handwritten digits
Author: keras-autowu developers
Date created: 2026/11/24
Last modified: 2026/11/24
Description: Train a small CNN with SGD while AutoLRS searches four decades of learning rates by Bayesian optimisation.
Accelerator: None
"""

"""
## Introduction

AutoLRS (Jin et al., ICLR 2021) splits training into stages. At the start of a stage
it saves the weights and the optimizer's state in memory, then tries ten learning
rates for a short segment each, every one from that checkpoint. For each it fits an
exponential to the loss and forecasts where the loss would be at the end of the
stage; a Gaussian process over the log learning rate chooses which one to try next.
It then restores the checkpoint once more and trains the rest of the stage at the
rate of the lowest forecast. Stages double in length as training goes on.

This example trains a small CNN on scikit-learn's handwritten digits (shipped with
scikit-learn, no download) with SGD, letting AutoLRS search from 1e-4 to 1. It runs in
about a minute on two CPU cores.
"""

"""
## Setup
"""

import os
import sys

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras_autowu

if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras  # Keras 2
else:
    import keras  # Keras 3, on the backend KERAS_BACKEND names (TensorFlow or JAX)

keras.utils.set_random_seed(0)
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 30

"""
## The data

Pixels scaled to [0, 1]; 20% of the images held out for testing.
"""

images, labels = load_digits(return_X_y=True)
images = (images.reshape(-1, 8, 8, 1) / 16.0).astype("float32")
x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, random_state=0, stratify=labels)

"""
## The model

A small CNN and SGD with momentum. The optimizer's learning rate does not matter:
AutoLRS sets the learning rate of every step.
"""

model = keras.Sequential([
    keras.Input((8, 8, 1)),
    keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
    keras.layers.MaxPooling2D(),
    keras.layers.Flatten(),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(10),
])
model.compile(
    optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)

"""
## Training

`AutoLRS(min_lr, max_lr)` in the callbacks. The exploration counts in the fit's steps;
with `tau=None` (the default) AutoLRS sizes its stages so that the fit holds at least
two. With `verbose=1` it prints a line per stage: the learning rates explored with
their forecast losses, and the one it trained.
"""

autolrs = keras_autowu.AutoLRS(min_lr=1e-4, max_lr=1.0, verbose=1)
history = model.fit(x_train, y_train, batch_size=32, epochs=EPOCHS, callbacks=[autolrs], verbose=0)

"""
## What it found
"""

for stage in autolrs.scheduler.stages:
    print(f"stage {stage.index}: trained {stage.exploit_steps} steps at {stage.chosen:.4g}"
          + (" (diverged: rolled back)" if stage.rolled_back else ""))
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"test accuracy {accuracy:.4f}, test loss {loss:.4f}")
plot = sys.argv[1] if len(sys.argv) > 1 else "autolrs_digits.png"
keras_autowu.plot_autolrs(autolrs.scheduler, plot, title="AutoLRS, SGD on digits")
print(f"wrote {plot}")

"""
## Conclusion

Each stage searched the whole range again from its own checkpoint; the grey segments
of the plot are the explored rates, whose weights were thrown away. In a short run
like this one about half of the steps explore, which is why AutoLRS suits long runs,
where a stage's search is a small share of the training.
"""
