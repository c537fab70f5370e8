"""The machinery the three schedulers share: the Keras glue, the run's variables, the in-graph hook, snapshots, checks."""
