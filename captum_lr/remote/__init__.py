r"""Models behind an API: :class:`~captum_lr.remote.blackbox.BlackBox` (budget,
retries, cache, resume), output decoders and a bundled demo server."""
