"""Permissions that follow the workspace: a role grants its group's permissions only where it is held.

A user who is Ops in workspace A and Customer Support in B may change devices of A but only read those of B.
Model-level checks (no object: "may this user open the Devices changelist at all?") use the union over the
user's memberships; object-level checks use the role of the object's own workspace.

Permissions given straight to a user or through a group they were put in (outside the roles) count only at the
model level and inside the workspaces the user holds a role in: they never open a workspace the user is no member
of (a Program Lead of A put into the "Program Lead" group by hand still reads nothing of B).
"""

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission

from texture_portal.choices import Role
from texture_portal.tenancy import workspace_id_of

_CACHE = "_workspace_role_perm_cache"
_ROLES_CACHE = "_workspace_roles_cache"


class WorkspaceRoleBackend(ModelBackend):
    def _role_permissions(self, user_obj) -> dict[int, set[str]]:
        """{workspace_id: {"app.codename", …}} for the user; two queries, cached on the user object."""
        cached = getattr(user_obj, _CACHE, None)
        if cached is not None:
            return cached
        from texture_portal.models import WorkspaceMembership

        rows = list(
            WorkspaceMembership.objects.filter(user_id=user_obj.pk).values_list(
                "workspace_id", "role", "workspace__timezone"
            )
        )
        memberships = [(workspace_id, role) for workspace_id, role, _ in rows]
        # what the admin's pages also need (the role homes, the zone times are shown in): read in the same query
        setattr(user_obj, _ROLES_CACHE, (memberships, sorted({zone for _, _, zone in rows})))
        group_names = {str(Role(role).label) for _, role in memberships}
        by_group: dict[str, set[str]] = {name: set() for name in group_names}
        granted = Permission.objects.filter(group__name__in=group_names).values_list(
            "group__name", "content_type__app_label", "codename"
        )
        for group_name, app_label, codename in granted:
            by_group[group_name].add(f"{app_label}.{codename}")
        result = {ws_id: by_group[str(Role(role).label)] for ws_id, role in memberships}
        setattr(user_obj, _CACHE, result)
        return result

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous:
            return set()
        direct = super().get_all_permissions(user_obj)
        by_workspace = self._role_permissions(user_obj)
        if obj is None:
            return direct | set().union(*by_workspace.values())
        workspace_id = workspace_id_of(obj)
        if workspace_id is None:
            # A global record (the catalog): the model-level answer applies.
            return direct | set().union(*by_workspace.values())
        if workspace_id not in by_workspace:
            return set()  # no role there: nothing, whatever was granted directly or through a group
        return direct | by_workspace[workspace_id]

    def has_perm(self, user_obj, perm, obj=None):
        return user_obj.is_active and perm in self.get_all_permissions(user_obj, obj)

    def workspace_ids_with_perm(self, user_obj, perm: str) -> list[int]:
        return sorted(ws for ws, perms in self._role_permissions(user_obj).items() if perm in perms)


def roles_by_workspace(user) -> list[tuple[int, str]]:
    """[(workspace_id, role)] of the user's memberships, read once per request with the permissions."""
    return _memberships(user)[0]


def workspace_timezone_names(user) -> list[str]:
    """The timezones of the user's workspaces (read with the permissions)."""
    return _memberships(user)[1]


def _memberships(user) -> tuple[list[tuple[int, str]], list[str]]:
    if getattr(user, _ROLES_CACHE, None) is None:
        setattr(user, _CACHE, None)  # the permissions and the memberships are read together
        WorkspaceRoleBackend()._role_permissions(user)
    return getattr(user, _ROLES_CACHE, None) or ([], [])


def workspaces_where(user, perm: str):
    """Workspaces in which `user` holds `perm` (all of them for a superuser)."""
    from texture_portal.models import Workspace

    if user.is_active and user.is_superuser:
        return Workspace.objects.all()
    return Workspace.objects.filter(pk__in=WorkspaceRoleBackend().workspace_ids_with_perm(user, perm))


def forget_cached_permissions(user) -> None:
    for attr in (_CACHE, _ROLES_CACHE, "_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        if hasattr(user, attr):
            delattr(user, attr)
