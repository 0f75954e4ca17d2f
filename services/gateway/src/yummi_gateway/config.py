"""Request body limits of the edge (the dataset-upload limit is `Settings.dataset_upload_max_bytes`)."""

from __future__ import annotations

DEFAULT_BODY_LIMIT = 64 * 1024
CATALOG_IMPORT_BODY_LIMIT = 25 * 1024 * 1024
