from django.apps import AppConfig


class TexturePortalConfig(AppConfig):
    name = "texture_portal"
    verbose_name = "Tenancy and audit"

    def ready(self):
        from texture_portal import checks  # noqa: F401  (registers the system checks)
