r"""The estimator: likelihood-ratio gradients from forward queries
(:mod:`~captum_lr.estimation.estimator`; a call's plan in
:mod:`~captum_lr.estimation.planning`, its report in
:mod:`~captum_lr.estimation.outcome`, what it estimates in
:mod:`~captum_lr.estimation.projection`), the designs that draw its noise
(:mod:`~captum_lr.estimation.designs`, :mod:`~captum_lr.estimation.mask_design`),
priors, the input layout, batched queries to the model
(:mod:`~captum_lr.estimation.queries`), standard errors and query costs."""
