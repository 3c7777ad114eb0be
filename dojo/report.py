"""Pictures a person would rather look at than read: the contact sheet of a run's episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def contact_sheet(results: list[dict], path: Path, max_rows: int = 12) -> Path:
    """One row per episode: a few front-camera frames over time, then the wrist camera's last.

    ``results[i]["frames"]`` maps camera -> [(seconds since the episode began, image), ...];
    the row title gives the
    instruction and the outcome, so a failure is visible at a glance.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results[:max_rows]
    cams = sorted({c for r in rows for c in r["frames"]}, key=lambda c: (c != "front", c))
    columns: list[tuple[str, int]] = []
    for cam in cams:
        n = max(len(r["frames"].get(cam, [])) for r in rows)
        columns += [(cam, i) for i in range(n)] if cam == cams[0] else [(cam, -1)]
    ncols = max(1, len(columns))
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(2.2 * ncols, 1.9 * len(rows) + 0.4), squeeze=False
    )
    for r, result in enumerate(rows):
        for c, (cam, i) in enumerate(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            frames = result["frames"].get(cam, [])
            if frames and (i < len(frames)):
                stamp, image = frames[i]
                ax.imshow(np.asarray(image))
                ax.set_xlabel(f"{cam} {stamp:+.1f} s", fontsize=7)
            else:
                ax.axis("off")
        ok = result["success"]
        axes[r][0].set_ylabel(f"ep {result['episode']}", fontsize=8)
        axes[r][0].set_title(
            f"{result['instruction']} -> {'SUCCESS' if ok else result['outcome'].upper()}",
            fontsize=8,
            loc="left",
            color="tab:green" if ok else "tab:red",
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
