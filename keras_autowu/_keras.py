"""The Keras that `tf.keras` names: Keras 3, or Keras 2 (tf_keras) with
TF_USE_LEGACY_KERAS=1 and on TensorFlow 2.15. AutoWU's callback must subclass the
Callback of the Keras that trains the model."""

import tensorflow as tf

keras = tf.keras
IS_KERAS_3 = hasattr(keras, "version") and keras.version().startswith("3.")
