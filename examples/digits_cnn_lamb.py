"""
Title: No learning rate to choose: AutoWU with LAMB on handwritten digits
Author: keras-autowu developers
Date created: 2026/11/22
Last modified: 2026/12/06
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
prints what AutoWU chose, and trains the same network again at LAMB's default
learning rate, to show what AutoWU's run is worth. It runs in about two minutes on two
CPU cores.
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

EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 60

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


def compiled_model():
    keras.utils.set_random_seed(0)  # both runs start from the same weights
    model = make_model()
    model.compile(
        optimizer=make_lamb(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


model = compiled_model()

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
    epochs=EPOCHS,
    validation_data=(x_test, y_test),
    callbacks=[autowu],
    verbose=0,
)

"""
## What AutoWU chose

`autowu.scheduler` holds the run: each step's loss, each GP test, and the switch.
"""

scheduler = autowu.scheduler  # AutoWU printed its summary at the end of fit
print(f"GP tests: {len(scheduler.tests)}, positive: {sum(t.positive for t in scheduler.tests)}")
test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"with AutoWU: test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}")

"""
## Without AutoWU

The same network, from the same initial weights, trained for as long at LAMB's
default learning rate: what a user who does not tune gets.
"""

plain = compiled_model()
default_lr = float(plain.optimizer.learning_rate.numpy())
plain_history = plain.fit(x_train, y_train, batch_size=128, epochs=EPOCHS, validation_data=(x_test, y_test), verbose=0)
plain_loss, plain_accuracy = plain.evaluate(x_test, y_test, verbose=0)
print(f"at LAMB's default learning rate ({default_lr:g}): test accuracy {plain_accuracy:.4f}, test loss {plain_loss:.4f}")

"""
## The plot

`plot_autowu` draws the learning rate and the loss against the steps, with the GP's
fit at the switch and the guard's rescues; `baseline` adds the run without AutoWU.
"""

plot_path = sys.argv[1] if len(sys.argv) > 1 else "autowu_digits.png"
keras_autowu.plot_autowu(
    scheduler,
    plot_path,
    title="AutoWU + LAMB on scikit-learn digits",
    baseline=(f"LAMB's default ({default_lr:g})", default_lr, plain_history.history["loss"]),
)
print(f"plot written to {os.path.abspath(plot_path)}")

"""
Example output (Keras 3.15, TensorFlow 2.21, 2 CPU cores):

```
1437 training images, 360 test images
AutoWU: the loss started to fall by step 48 (learning rate 0.004084); the warmup climbs 4 times slower from here.
AutoWU: the loss passed its minimum; the warmup ends at step 168 (3 tests in a row agree, p=1.000).
  Back to the weights of step 132; learning rate 0.05534 (the GP's minimum), then a cosine decay to 0.
AutoWU: rescue 1 of at most 5 at step 204: the loss did not get back below the warmup's best (0.1344) in the 3 test intervals after the switch at step 168 (steps 192-203: 0.3191).
  Back to the weights of step 132; learning rate halved, 0.05473 -> 0.02737.
AutoWU: step 720 of 720: the warmup ended at step 168, learning rate 0.05534; 1 rescue.
GP tests: 14, positive: 3
with AutoWU: test accuracy 0.9861, test loss 0.0758
at LAMB's default learning rate (0.001): test accuracy 0.9306, test loss 0.3191
plot written to .../autowu_digits.png
```

The loss sits at its start while the learning rate is tiny, and the warmup climbs
fast over it. LAMB's loss blows up some 35 steps past its minimum, as three tests in a
row agree; AutoWU ends the warmup there and goes back to the weights of the lowest
loss. At the handed-on rate the loss does not get back below its best within three
test intervals, so the guard goes back again and halves the rate before the loss can
climb: the plot marks the rescue. At LAMB's default learning rate the same network is
still far from trained after as many steps. The learning rate AutoWU finds depends on
the optimizer: LAMB scales each layer's update by its weights' norm, so it tolerates
larger rates than SGD. The test loss moves with float round-off from one version of
keras-autowu or its libraries to the next (0.08 to 0.23 with the same decisions), the
accuracy less.
"""
