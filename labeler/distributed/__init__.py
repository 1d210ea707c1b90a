"""The scale-out wing: ``labeler apply/verify --engine ray`` over any fsspec URL (S3, OSS, COS,
MinIO, GCS, local paths) on an existing Ray cluster.

Why a wing: Ray, fsspec and s3fs are heavy optional extras (``pip install
'aigc-labeler[ray,s3]'``); only the CLI loads this package, lazily. The labelling and verifying
are the local engine's own functions (:func:`labeler.batch.label_data`,
:func:`labeler.verification.verify`): this wing only moves keys to workers and bytes to storage.
"""

from __future__ import annotations

from ..errors import LabelerError

__all__ = ["MissingExtraError"]


class MissingExtraError(LabelerError):
    """An optional dependency of the distributed engine is not installed."""
