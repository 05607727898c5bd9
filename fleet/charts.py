"""A device's telemetry as a small server-rendered SVG chart (no JavaScript, no external assets)."""

from django.utils.html import format_html, format_html_join

WIDTH, HEIGHT, PAD = 720, 220, 36


def telemetry_chart_svg(readings, *, start, end) -> str:
    """SoC (%, left axis, green) and power (kW, right axis: battery + discharging in blue, charger draw in
    orange) over [start, end]. `readings` are TelemetryReading rows, oldest first."""
    readings = list(readings)
    if not readings:
        return format_html("<p>{}</p>", "No telemetry in the last day.")
    span = max(1.0, (end - start).total_seconds())
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x(at) -> float:
        return PAD + plot_w * max(0.0, min(1.0, (at - start).total_seconds() / span))

    powers = [abs(v) for r in readings for v in (r.charge_rate_w, r.charger_wattage_w) if v is not None]
    kw_max = max(1.0, max(powers, default=0) / 1000)

    def y_soc(value) -> float:
        return PAD + plot_h * (1 - value / 100)

    def y_kw(watts) -> float:
        # symmetric axis: + discharging above the middle line, − charging below
        return PAD + plot_h / 2 * (1 - (watts / 1000) / kw_max)

    def polyline(values, colour) -> str:
        points = " ".join(f"{x(at):.1f},{y:.1f}" for at, y in values)
        if not points:
            return ""
        return format_html('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>', colour, points)

    soc = [(r.measured_at, y_soc(r.charge_percentage)) for r in readings if r.charge_percentage is not None]
    battery = [(r.measured_at, y_kw(r.charge_rate_w)) for r in readings if r.charge_rate_w is not None]
    charger = [(r.measured_at, y_kw(-r.charger_wattage_w)) for r in readings if r.charger_wattage_w is not None]
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="11" text-anchor="{}" fill="#374151">{}</text>',
        [
            (PAD - 4, PAD + 4, "end", "100%"),
            (PAD - 4, HEIGHT - PAD + 4, "end", "0%"),
            (WIDTH - PAD + 4, PAD + 4, "start", f"+{kw_max:.1f} kW"),
            (WIDTH - PAD + 4, HEIGHT - PAD + 4, "start", f"−{kw_max:.1f} kW"),
            (PAD, HEIGHT - 8, "start", f"{start:%H:%M} UTC"),
            (WIDTH - PAD, HEIGHT - 8, "end", f"{end:%H:%M} UTC"),
        ],
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        'aria-label="SoC and power over the last day" style="background:#fff;border:1px solid #e5e7eb">'
        '<rect x="{p}" y="{p}" width="{pw}" height="{ph}" fill="none" stroke="#d1d5db"/>'
        '<line x1="{p}" x2="{x2}" y1="{mid}" y2="{mid}" stroke="#e5e7eb" stroke-dasharray="4 3"/>'
        "{soc}{battery}{charger}{labels}</svg>"
        '<p style="margin:4px 0 0"><span style="color:#15803d">■</span> SoC (%) '
        '<span style="color:#2563eb">■</span> battery power (+ discharging) '
        '<span style="color:#ea580c">■</span> charger draw · {n} readings</p>',
        w=WIDTH,
        h=HEIGHT,
        p=PAD,
        pw=plot_w,
        ph=plot_h,
        x2=WIDTH - PAD,
        mid=PAD + plot_h / 2,
        soc=polyline(soc, "#15803d"),
        battery=polyline(battery, "#2563eb"),
        charger=polyline(charger, "#ea580c"),
        labels=labels,
        n=len(readings),
    )
