"""The Gaussian processes: AutoWU's "minimum passed?" test and AutoLRS's search."""
