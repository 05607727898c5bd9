"""The fleet CSV importer: one row per device → linked Contact + Site + Device (+ Enrollment).

Why not django-import-export's row pipeline for the import itself: it instantiates, diffs and saves row by
row (2–4k rows/s at best by its maintainers' own figures; `bench/import_fleet.py` measures its default
resource at about 200 rows/s here, README "Performance"), which puts a 100k-row utility file
at 30–60 s per pass and twice that for preview + confirm. This importer is set-based instead: read and
normalize every row, load what the rows refer to with one query per model, plan every create/update in
memory, and write the plan in one transaction with bulk statements. django-import-export still does what it
is best at here: the export Resource (`fleet.resources`) and formula escaping of exported cells.

Public entry points: `read_fleet_file` (bytes → header + records), `plan_fleet_import` (records → plan with
per-row status and every error), `apply_fleet_import` (plan → database).
"""

from fleet.importing.planner import FleetImportPlan, plan_fleet_import
from fleet.importing.reader import FleetFile, FleetFileError, read_fleet_file
from fleet.importing.writer import apply_fleet_import

__all__ = [
    "FleetFile",
    "FleetFileError",
    "FleetImportPlan",
    "apply_fleet_import",
    "plan_fleet_import",
    "read_fleet_file",
]
