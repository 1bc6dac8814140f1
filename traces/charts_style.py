"""The console's one chart look: colours, font, axes and the Plotly toolbar.

Here in traces, the app every other app may import, so that the traces, budgets and
rollouts charts share it without importing each other. Figures are plain data: views hand
them to the page with `json_script` and static/agentops/charts.js draws them with the
plotly.js served from /static/vendor/.
"""

from __future__ import annotations

ACCENT = "#2c59d6"
DANGER = "#c0312b"
MUTED = "#8a93a0"
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")
FONT = {
    "family": 'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif',
    "size": 12,
    "color": "#1b2028",
}
CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
}
SPARK_CONFIG = {"displayModeBar": False, "responsive": True, "staticPlot": False}


def axis(**extra) -> dict:
    """Axis style shared by every chart of the console."""
    return {
        "gridcolor": "#eef0f3",
        "linecolor": "#cdd2d9",
        "zeroline": False,
        "tickfont": {"color": "#596270"},
        "automargin": True,
        **extra,
    }
