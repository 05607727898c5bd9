"""The `/v1/` API base shared by every app: API-key authentication, per-key rate limits, cursor pagination,
one error body, the OpenAPI schema hooks and the base view classes. Each app plugs its routes in through its
own `<app>/api/urls.py`, included by `texture_portal/api/urls.py`."""
