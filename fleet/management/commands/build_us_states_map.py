"""Build the customer page's offline map outline (fleet/static/fleet/maps/us-states.geojson) from us-atlas's
`states-10m.json` (TopoJSON of the Census Bureau's 2017 cartographic state boundaries; see the README beside
the output for the source and its licence).

    cd /tmp && npm pack us-atlas@3.0.1 && tar xzf us-atlas-3.0.1.tgz
    python manage.py build_us_states_map /tmp/package/states-10m.json

Each shared border (a TopoJSON arc) is simplified once, with its ends kept, so neighbouring states still meet
after simplification; coordinates are rounded to 3 decimals (about 100 m, far below the tolerance)."""

import json
import math
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "static" / "fleet" / "maps" / "us-states.geojson"


def decode_arcs(topology: dict) -> list[list[tuple[float, float]]]:
    """The topology's arcs as absolute (longitude, latitude) points (quantized, delta-encoded arcs decoded)."""
    transform = topology.get("transform")
    arcs = []
    for arc in topology["arcs"]:
        if transform is None:
            arcs.append([(float(x), float(y)) for x, y, *_ in arc])
            continue
        (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
        x = y = 0
        points = []
        for dx, dy, *_ in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def simplify(points: list[tuple[float, float]], tolerance: float) -> list[tuple[float, float]]:
    """Douglas–Peucker with both ends kept (iterative: long borders would overflow a recursive one)."""
    if len(points) < 3 or tolerance <= 0:
        return list(points)
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        (ax, ay), (bx, by) = points[first], points[last]
        dx, dy = bx - ax, by - ay
        length = math.hypot(dx, dy)
        farthest, distance = None, tolerance
        for i in range(first + 1, last):
            px, py = points[i]
            d = math.hypot(px - ax, py - ay) if length == 0 else abs(dy * px - dx * py + bx * ay - by * ax) / length
            if d > distance:
                farthest, distance = i, d
        if farthest is not None:
            keep[farthest] = True
            stack += [(first, farthest), (farthest, last)]
    return [p for p, kept in zip(points, keep, strict=True) if kept]


def ring(indexes: list[int], arcs: list[list[tuple[float, float]]]) -> list[list[float]]:
    """A closed ring from arc indexes (a negative index ~i is arc i reversed); shared points joined once."""
    points: list[tuple[float, float]] = []
    for index in indexes:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc[1:] if points else arc)
    if points and points[0] != points[-1]:
        points.append(points[0])
    return [[round(x, 3), round(y, 3)] for x, y in points]


def states_geojson(topology: dict, *, tolerance: float, object_name: str = "states") -> dict:
    arcs = [simplify(arc, tolerance) for arc in decode_arcs(topology)]
    features = []
    for geometry in topology["objects"][object_name]["geometries"]:
        if geometry["type"] == "Polygon":
            polygons = [geometry["arcs"]]
        elif geometry["type"] == "MultiPolygon":
            polygons = geometry["arcs"]
        else:
            continue
        shapes = []
        for polygon in polygons:
            rings = [ring(r, arcs) for r in polygon]
            # a ring simplified below a triangle (a tiny island) is left out; its polygon too if it was the outer
            rings = [r for r in rings if len(r) >= 4]
            if rings:
                shapes.append(rings)
        if not shapes:
            continue
        features.append(
            {
                "type": "Feature",
                "id": geometry.get("id"),
                "properties": {"name": geometry.get("properties", {}).get("name", ""), "fips": geometry.get("id")},
                "geometry": {"type": "MultiPolygon", "coordinates": shapes},
            }
        )
    return {"type": "FeatureCollection", "features": features}


class Command(BaseCommand):
    help = "Build fleet/static/fleet/maps/us-states.geojson from us-atlas's states-10m.json (TopoJSON)."

    def add_arguments(self, parser):
        parser.add_argument("topojson", help="Path of us-atlas's states-10m.json.")
        parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
        parser.add_argument("--tolerance", type=float, default=0.03, help="Simplification, in degrees.")

    def handle(self, *args, **options):
        try:
            topology = json.loads(Path(options["topojson"]).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {options['topojson']}: {exc}") from exc
        if topology.get("type") != "Topology" or "states" not in topology.get("objects", {}):
            raise CommandError("Not us-atlas's states TopoJSON (no `states` object in a Topology).")
        collection = states_geojson(topology, tolerance=options["tolerance"])
        text = json.dumps(collection, separators=(",", ":"))
        Path(options["output"]).write_text(text + "\n")
        self.stdout.write(f"{len(collection['features'])} states, {len(text) / 1024:.0f} KiB → {options['output']}")
