"""The top bar: where you are (store > entity > event) and the mode, in words."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from pik_tui.safe import clip, clip_middle


class Crumbs(Static):
    """Breadcrumbs; every part is untrusted text, so it is built as plain ``Text``."""

    def show(
        self,
        store: str,
        entity_id: str | None,
        event_id: bytes | None,
        tab: str,
        read_only: bool,
    ) -> None:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append(" PIK ", style="bold reverse")
        if read_only:  # first, so a narrow terminal never cuts it off
            text.append(" READ-ONLY ", style="bold reverse")
        text.append(" store ", style="dim")
        # A path's end tells stores apart (…/production-eu-west-1): cut in the middle.
        text.append(clip_middle(store, 40))
        if entity_id is not None:
            text.append(" > ", style="dim")
            text.append(clip(entity_id, 40), style="bold")
        if event_id is not None:
            text.append(" > event ", style="dim")
            text.append(event_id.hex()[:12] + "…")
        text.append(f"  [{tab}]", style="dim")
        self.update(text)
