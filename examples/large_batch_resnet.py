"""
Title: Large-batch training on any hardware with AutoWU
Author: keras-autowu developers
Date created: 2026/11/22
Last modified: 2026/11/22
Description: A small ResNet trained with LAMB and AutoWU on a TPU, several GPUs or a CPU, with the batch scaled to the replicas.
Accelerator: TPU
"""

"""
## Introduction

Large batches train fast on many devices, but the usual recipe (a learning rate tuned
at a small batch, scaled by the square root of the batch size, plus a warmup) needs
that small-batch tuning first. AutoWU needs none: it finds the learning rate and the
warmup during the run. This example picks the hardware it finds: a TPU (on Colab,
choose a TPU runtime), several GPUs, or the CPU. It scales the global batch with the
number of replicas and compiles the train step with XLA.

It trains on CIFAR-10 when `keras.datasets.cifar10` has it on disk already
(`~/.keras/datasets/cifar-10-batches-py`), and otherwise on scikit-learn's digits,
resized to 32x32 RGB, so that it runs on a fresh machine with no download.

    python examples/large_batch_resnet.py [--epochs 30] [--batch-per-replica 256]
"""

"""
## Setup
"""

import argparse
import os

import numpy as np
import tensorflow as tf

import keras_autowu

keras = tf.keras  # Keras 3, or Keras 2 (tf_keras) with TF_USE_LEGACY_KERAS=1

"""
## Choose the hardware

On a TPU, every step of the train function must compile with XLA; AutoWU's learning
rate does, and its Gaussian process runs on the host CPU. Several steps per call
(`steps_per_execution`) keep the TPU busy; AutoWU's learning rate stays exact at each.
"""


def choose_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()  # Colab finds its TPU itself
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver), 32
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        pass
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy(), 1
    return tf.distribute.get_strategy(), 1


"""
## The data
"""


def load_data():
    cifar = os.path.expanduser("~/.keras/datasets/cifar-10-batches-py")
    if os.path.isdir(cifar):
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
        return "CIFAR-10", x_train / 255.0, y_train[:, 0], x_test / 255.0, y_test[:, 0]
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    images = tf.image.resize(images.reshape(-1, 8, 8, 1) / 16.0, (32, 32)).numpy()
    images = np.repeat(images, 3, axis=-1)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, random_state=0)
    return "scikit-learn digits at 32x32", x_train, y_train, x_test, y_test


"""
## A small ResNet
"""


def residual_block(x, filters, stride):
    shortcut = x
    x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False)(shortcut)
        shortcut = keras.layers.BatchNormalization()(shortcut)
    return keras.layers.ReLU()(keras.layers.Add()([x, shortcut]))


def make_resnet(num_classes=10):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for filters, stride in ((32, 1), (64, 2), (128, 2)):
        x = residual_block(x, filters, stride)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def make_lamb():
    if hasattr(keras.optimizers, "Lamb"):  # Keras 3
        return keras.optimizers.Lamb(weight_decay=1e-4)
    import tensorflow_addons as tfa  # LAMB on the Keras 2 stack

    return tfa.optimizers.LAMB(weight_decay=1e-4)


"""
## Train
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-per-replica", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None, help="use only this many training images")
    parser.add_argument("--plot", default="autowu_large_batch.png")
    args = parser.parse_args()

    strategy, steps_per_execution = choose_strategy()
    batch_size = args.batch_per_replica * strategy.num_replicas_in_sync
    name, x_train, y_train, x_test, y_test = load_data()
    x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    print(f"{name}: {len(x_train)} images; {strategy.num_replicas_in_sync} replica(s), global batch {batch_size}")

    with strategy.scope():
        model = make_resnet()
        model.compile(
            optimizer=make_lamb(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            steps_per_execution=steps_per_execution,
            jit_compile=True,
        )
    autowu = keras_autowu.AutoWU()
    model.fit(x_train.astype("float32"), y_train, batch_size=batch_size, epochs=args.epochs, callbacks=[autowu], verbose=2)
    _, accuracy = model.evaluate(x_test.astype("float32"), y_test, batch_size=batch_size, verbose=0)
    switch = autowu.scheduler.switch
    found = f"switched at step {switch.step} to lr {switch.lr_at_minimum:.3g}" if switch else "no switch"
    print(f"AutoWU {found}; test accuracy {accuracy:.4f}")
    keras_autowu.plot_autowu(autowu.scheduler, args.plot, title=f"AutoWU + LAMB, batch {batch_size}")


if __name__ == "__main__":
    main()
