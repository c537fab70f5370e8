"""
Title: No learning rate to choose: AutoWU with LAMB on handwritten digits
Author: keras-autowu developers
Date created: 2026/11/22
Last modified: 2026/12/03
Description: Train a small CNN with LAMB and let AutoWU find the learning rate and its warmup.
Accelerator: None
"""

"""
## Introduction

Large-batch training needs a good learning rate and a warmup, and finding them costs
many runs. AutoWU (Kim et al., 2021, https://arxiv.org/abs/2107.05855) finds both
during the one run you make: it raises the learning rate exponentially from 1e-5 and
fits a Gaussian process to the training loss; when the GP is confident that the loss
has passed its minimum, AutoWU sets the learning rate to where the loss was lowest and
decays it with a cosine to the end of training. A guard watches the loss all the way:
a blow-up is rolled back to the weights of the lowest loss, at a lower rate.

This example trains a small convolutional network on scikit-learn's handwritten digits
(1,797 8x8 images, shipped with scikit-learn, no download) with the LAMB optimizer,
and prints what AutoWU chose. It runs in about a minute on two CPU cores.
"""

"""
## Setup
"""

import os
import sys

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras_autowu
import tensorflow as tf

keras = tf.keras  # Keras 3, or Keras 2 (tf_keras) with TF_USE_LEGACY_KERAS=1

keras.utils.set_random_seed(0)

"""
## The data

Pixels scaled to [0, 1]; 20% of the images held out for testing.
"""

images, labels = load_digits(return_X_y=True)
images = (images.reshape(-1, 8, 8, 1) / 16.0).astype("float32")
x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, random_state=0, stratify=labels)
print(f"{len(x_train)} training images, {len(x_test)} test images")

"""
## The model

Two small convolutions and a classifier. The optimizer is built with its default
learning rate: AutoWU overwrites it at every step.
"""


def make_model():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10),
        ]
    )


def make_lamb():
    if hasattr(keras.optimizers, "Lamb"):  # Keras 3
        return keras.optimizers.Lamb(weight_decay=1e-4)
    import tensorflow_addons as tfa  # LAMB on the Keras 2 stack (TensorFlow 2.15)

    return tfa.optimizers.LAMB(weight_decay=1e-4)


model = make_model()
model.compile(
    optimizer=make_lamb(),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)

"""
## Train with AutoWU

The callback takes the steps per epoch and the number of epochs from `fit`. Nothing
else is needed; `verbose=1` prints a line or two at each decision, and a summary at
the end of `fit`.
"""

autowu = keras_autowu.AutoWU(verbose=1)
history = model.fit(
    x_train,
    y_train,
    batch_size=128,
    epochs=60,
    validation_data=(x_test, y_test),
    callbacks=[autowu],
    verbose=0,
)

"""
## What AutoWU chose

`autowu.scheduler` holds the run: each step's loss, each GP test, and the switch.
`plot_autowu` draws the learning rate and the loss against the steps, with the GP's
fit at the switch.
"""

scheduler = autowu.scheduler  # AutoWU printed its summary at the end of fit
print(f"GP tests: {len(scheduler.tests)}, positive: {sum(t.positive for t in scheduler.tests)}")
test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}")

plot_path = sys.argv[1] if len(sys.argv) > 1 else "autowu_digits.png"
keras_autowu.plot_autowu(scheduler, plot_path, title="AutoWU + LAMB on scikit-learn digits")
print(f"plot written to {os.path.abspath(plot_path)}")

"""
Example output (Keras 3.15, TensorFlow 2.21, 2 CPU cores):

```
1437 training images, 360 test images
AutoWU: the loss has moved by step 48 (learning rate 0.004084); the warmup climbs at its steady pace from here, 4 times slower than over the flat start.
AutoWU: the loss minimum has passed at step 168 (p=1.000, 3 positive tests in a row); learning rate set to 0.05534 (momentum_corrected; the GP's minimum is at 0.05534), then cosine decay.
AutoWU: weights and optimizer state rolled back to step 132, the test with the lowest loss so far.
AutoWU: rescue 1 of at most 5 at step 204, in the cooldown phase: the handed-on learning rate failed its trial: the mean loss of none of the 3 intervals since the switch at step 168 fell below the warmup's best (0.1344); steps 192..203: 0.3191. Learning rate halved (0.05473 -> 0.02737) from here on; restore the weights of step 132.
AutoWU: weights and optimizer state rolled back to step 132, the test with the lowest loss so far.
warmup ended at step 168 of 720, learning rate 0.0553
GP tests: 14, positive: 3
test accuracy 0.9861, test loss 0.2330
plot written to .../autowu_digits.png
```

The loss sits at its start while the learning rate is tiny, and the warmup climbs
fast over it. LAMB's loss blows up some 35 steps past its minimum, as three tests in
a row agree; AutoWU ends the warmup there and rolls back to the weights of the lowest loss. At the
handed-on rate the loss does not get back below its best within three test intervals, and the
guard rolls back again and halves the rate before the loss can climb: the plot marks the
rescue. The learning rate AutoWU finds depends on the optimizer: LAMB scales each
layer's update by its weights' norm, so it tolerates larger rates than SGD.
"""
