"""What programs shows on the Program Lead's home (registered with texture_portal.home in ProgramsConfig.ready)."""

from django.utils.translation import gettext_lazy as _

from programs.selectors import programs_overview
from texture_portal.choices import Role
from texture_portal.home import HomeLink, HomePanel, home_link_register, home_panel_register


def programs_panel(request, workspace_ids: list[int]) -> dict:
    return {"programs": programs_overview(workspace_ids=workspace_ids)}


def register() -> None:
    home_panel_register(
        HomePanel(
            role=Role.PROGRAM_LEAD,
            key="programs",
            title=_("Programs"),
            template="admin/programs/home/programs.html",
            context=programs_panel,
            order=10,
            permission="programs.view_program",
            wide=True,
        )
    )
    home_link_register(
        HomeLink(
            role=Role.PROGRAM_LEAD,
            title=_("Programs"),
            url_name="admin:programs_program_changelist",
            icon="category",
            permission="programs.view_program",
            order=10,
        )
    )
    home_link_register(
        HomeLink(
            role=Role.PROGRAM_LEAD,
            title=_("Enrollments"),
            url_name="admin:programs_enrollment_changelist",
            icon="how_to_reg",
            permission="programs.view_enrollment",
            order=20,
        )
    )
