"""The icons of the plugin's views in Airflow's menus and tabs (``external_views`` ``icon`` and
``icon_dark_mode``): small SVGs as ``data:`` URLs, since the UI shows them as images from any page's
address, where a relative URL would not resolve and an app route would need a signed-in request."""

from __future__ import annotations

from urllib.parse import quote

LIGHT, DARK = "#4a5568", "#cbd5e0"

# 24 x 24 stroke drawings, each a different shape so the tabs tell apart at a glance
SHAPES = {
    # two arrows chasing each other round: an execution used again
    "reuse": '<path d="M4 12a8 8 0 0 1 13.7-5.6"/><path d="M18 3v4h-4"/>'
    '<path d="M20 12a8 8 0 0 1-13.7 5.6"/><path d="M6 21v-4h4"/>',
    # a pin: a node held to a chosen execution
    "pin": '<path d="M9 3h6l-1 6 4 3v2H6v-2l4-3z"/><path d="M12 14v7"/>',
    # a checklist: what a run would do
    "plan": '<path d="M9 6h11M9 12h11M9 18h11"/><path d="M3.5 6l1.5 1.5L7 5"/>'
    '<path d="M3.5 12l1.5 1.5L7 11"/><path d="M3.5 18l1.5 1.5L7 17"/>',
    # a gauge: the figures of the dashboard
    "dashboard": '<path d="M3 16a9 9 0 0 1 18 0"/><path d="M12 16l4-6"/><circle cx="12" cy="16" r="1.5"/>',
}


def icon(shape: str, color: str = LIGHT) -> str:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" '
        f'stroke="{color}" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
        f"{SHAPES[shape]}</svg>"
    )
    return "data:image/svg+xml;utf8," + quote(svg)


def icons(shape: str) -> dict[str, str]:
    """The two keys of an external view: its icon for a light and for a dark theme."""
    return {"icon": icon(shape, LIGHT), "icon_dark_mode": icon(shape, DARK)}
