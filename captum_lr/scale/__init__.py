r"""Past one machine, on Ray: explain a whole dataset with a pool of workers
(:func:`attribute_dataset`, results in Parquet, :func:`load_attributions`),
and fan one large attribution's forward rows out to model replicas
(:class:`RayForward`).

Needs the ``scale`` extra (``pip install 'captum-lr[scale]'``: Ray Data,
pyarrow); ``import captum_lr`` does not import it.
"""

from captum_lr.scale.forward import RayForward
from captum_lr.scale.job import DatasetJobError, DatasetSummary, attribute_dataset
from captum_lr.scale.store import load_attributions
from captum_lr.scale.worker import example_seed, seed_example

__all__ = [
    "DatasetJobError",
    "DatasetSummary",
    "RayForward",
    "attribute_dataset",
    "example_seed",
    "load_attributions",
    "seed_example",
]
