"""Updating a model from a dict of changes, the one way services do it (HackSoft's `model_update`)."""

from django.db import models

from texture_portal.audit import jsonable


def model_update(*, instance: models.Model, fields: list[str], data: dict) -> dict:
    """Set those of `fields` present in `data`, validate, and save only what changed.

    Returns {field: [old, new]} (empty when nothing changed, in which case nothing is written).
    """
    changes = {}
    for name in fields:
        if name not in data:
            continue
        field = instance._meta.get_field(name)
        old = getattr(instance, field.attname if field.many_to_one else name)
        new = data[name]
        if field.many_to_one and isinstance(new, models.Model):
            new = new.pk
        if old != new:
            changes[name] = [jsonable(old), jsonable(new)]
            setattr(instance, field.attname if field.many_to_one else name, new)
    if changes:
        instance.full_clean()
        update_fields = [instance._meta.get_field(name).attname for name in changes]
        if hasattr(instance, "last_updated"):
            update_fields.append("last_updated")
        instance.save(update_fields=update_fields)
    return changes
