r"""The estimator: likelihood-ratio gradients from forward queries
(:mod:`~captum_lr.estimation.estimator`), the designs that draw its noise
(:mod:`~captum_lr.estimation.designs`, :mod:`~captum_lr.estimation.mask_design`),
priors, the input layout, batched queries to the model
(:mod:`~captum_lr.estimation.queries`), standard errors and query costs."""
