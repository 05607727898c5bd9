"""Helpers of the migrations that move a model from one app to another without touching its table.

The table keeps its name (`db_table`) and its rows; Django's state moves with `SeparateDatabaseAndState`.
What would go stale is the content type (`app_label`, `model`): permissions, the roles holding them, admin
log entries and audit rows point at it. Relabelling it, rather than letting a new one be created, keeps all
of them attached to the model.
"""


def content_types_relabel(apps, *, models: tuple[str, ...], source: str, target: str) -> None:
    """Give the content types of `models` the app label `target` (reversible: swap source and target)."""
    from django.contrib.contenttypes.models import ContentType as CachedContentType

    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in models:
        if ContentType.objects.filter(app_label=target, model=model).exists():
            continue  # already there: nothing to carry over
        ContentType.objects.filter(app_label=source, model=model).update(app_label=target)
    CachedContentType.objects.clear_cache()  # this process may have cached the old labels
