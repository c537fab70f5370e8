"""
Title: A learning rate that follows the loss: factor search on handwritten digits
Author: keras-autowu developers
Date created: 2026/11/24
Last modified: 2026/11/24
Description: Train a small CNN with SGD and let factor search move its learning rate each epoch.
Accelerator: None
"""

"""
## Introduction

A fixed schedule (constant, step, cosine) decides the learning rate of every step
before training starts. Factor search (Kim & Yu, "Automated learning rate scheduling
with in-training information") decides it as training goes: once per epoch it takes a
probe batch and measures the loss after one step at each of a few multiples of the
current learning rate (x2, x1, x0.5). The learning rate then moves towards the
multiples that gave the lowest loss: it is multiplied by their geometric mean,
weighted by exp(-normalised loss).

keras-autowu probes inside the train step, with no copy of the model: the weights move
along the step and back, bit for bit. This example trains a small CNN on
scikit-learn's handwritten digits (shipped with scikit-learn, no download) with SGD,
starting from a learning rate that is too small, and shows the learning rate that
factor search finds. It runs in under a minute on two CPU cores.
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

A small CNN and SGD with momentum, at 0.001: ten times below what trains this model
well. Factor search takes the optimizer's learning rate as its start.
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
    optimizer=keras.optimizers.SGD(0.001, momentum=0.9),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)

"""
## Training

`FactorSearch()` in the callbacks is all it takes. With `verbose=1` it prints each
update: the probe batch's loss, the loss after each multiple's step, and the new
learning rate.
"""

search = keras_autowu.FactorSearch(verbose=1)
history = model.fit(x_train, y_train, batch_size=32, epochs=EPOCHS, callbacks=[search], verbose=0)

"""
## What it found
"""

rates = history.history["learning_rate"]
print(f"learning rate by epoch: start {rates[0]:.4g}, middle {rates[len(rates) // 2]:.4g}, end {rates[-1]:.4g}")
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"test accuracy {accuracy:.4f}, test loss {loss:.4f}")
plot = sys.argv[1] if len(sys.argv) > 1 else "factor_search_digits.png"
keras_autowu.plot_factor_search(search.scheduler, plot, title="Factor search, SGD on digits")
print(f"wrote {plot}")

"""
## Conclusion

Factor search raised the learning rate from its too-small start, epoch by epoch, as
long as the larger steps gave lower probe losses. It still needs a start that does not
diverge: a learning rate far too large blows up in the first epoch, before any update.
"""
