"""AutoLRS: the learning rate found stage by stage by Bayesian optimisation."""
