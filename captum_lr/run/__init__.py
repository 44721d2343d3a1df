r"""Running a Captum notebook unchanged: ``captum-lr run``.

:func:`run_notebook` executes a notebook with nbclient, with
:func:`~captum_lr.patch_captum` active in its kernel
(:mod:`captum_lr.run.recorder`, the kernel side), and returns a
:class:`NotebookRun`: every outermost Captum gradient call with its forward
rows (and, with ``compare=True``, its agreement with autograd), and the cells
that failed. :mod:`captum_lr.cli` is the console command.
"""

from captum_lr.run.notebook import CallRecord, CellFailure, NotebookRun, run_notebook

__all__ = ["CallRecord", "CellFailure", "NotebookRun", "run_notebook"]
