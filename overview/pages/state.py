"""The state of an overview page, all of it in the query string, and the links that change it.

Every view (range or start/end, mapping, metric, step, reason, samples tab, the breakdown's filters and
order) is a URL, so it can be
bookmarked and sent to a colleague; links carry the rest of the state along.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlencode

METRICS = ("percent", "count")
DETAILS = ("breakdown", "samples")
# The breakdown table's order: a column, "-" first for descending; most events first by default.
SORTS = ("-events", "events", "name", "-name", "-change", "change")
FILTERS = ("event_type", "event_name", "app_version")  # the breakdown's filters, kept across steps


@dataclass(frozen=True)
class State:
    range: str = ""
    start: str = ""
    end: str = ""
    tz: str = ""  # set with a custom start/end, so a shared link means the same minutes
    mapping: str = ""
    metric: str = "percent"
    step: str = ""
    reason: str | None = None  # "" is a real reason code (no reason), so None means "none selected"
    detail: str = "breakdown"
    event_type: str = ""
    event_name: str = ""
    app_version: str = ""
    sort: str = "-events"

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> "State":
        metric = query.get("metric", "")
        detail = query.get("detail", "")
        sort = query.get("sort", "")
        return cls(
            range=query.get("range", "").strip(),
            start=query.get("start", "").strip(),
            end=query.get("end", "").strip(),
            tz=query.get("tz", "").strip(),
            mapping=query.get("mapping", "").strip(),
            metric=metric if metric in METRICS else "percent",
            step=query.get("step", "").strip(),
            reason=query.get("reason"),
            detail=detail if detail in DETAILS else "breakdown",
            event_type=query.get("event_type", ""),
            event_name=query.get("event_name", ""),
            app_version=query.get("app_version", ""),
            sort=sort if sort in SORTS else "-events",
        )

    @property
    def is_custom(self) -> bool:
        return bool(self.start or self.end)

    @property
    def filters(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in FILTERS}

    def sorted_by(self, column: str) -> str:
        """The query string that sorts the breakdown by a column: its usual direction first (most
        events, biggest change, names A to Z), the other direction when it is already sorted so."""
        natural = column if column == "name" else f"-{column}"
        reverse = natural[1:] if natural.startswith("-") else f"-{natural}"
        return self.query(sort=reverse if self.sort == natural else natural)

    @property
    def window_params(self) -> dict[str, str]:
        return {"range": self.range, "start": self.start, "end": self.end}

    def query(self, **changes) -> str:
        """The query string of this state with `changes` (a new step clears the reason and tab)."""
        if "step" in changes:
            changes.setdefault("reason", None)
            changes.setdefault("detail", "breakdown")
        if "reason" in changes:
            changes.setdefault("detail", "breakdown")
        if "range" in changes:
            changes.update(start="", end="", tz="")
        state = replace(self, **changes)
        pairs = [
            ("range", state.range),
            ("start", state.start),
            ("end", state.end),
            ("tz", state.tz),
            ("mapping", state.mapping),
            ("metric", "" if state.metric == "percent" else state.metric),
            ("step", state.step),
        ]
        params = [(key, value) for key, value in pairs if value]
        if state.reason is not None and state.step:
            params.append(("reason", state.reason))
        if state.detail != "breakdown":
            params.append(("detail", state.detail))
        params += [(key, value) for key, value in state.filters.items() if value]
        if state.sort != "-events":
            params.append(("sort", state.sort))
        return "?" + urlencode(params) if params else "?"

    def hidden(self, *keys: str) -> list[tuple[str, str]]:
        """(name, value) pairs of the given keys that are set, for a GET form's hidden inputs."""
        values = {
            "range": self.range,
            "start": self.start,
            "end": self.end,
            "tz": self.tz,
            "mapping": self.mapping,
            "metric": "" if self.metric == "percent" else self.metric,
            "step": self.step,
            "reason": self.reason if self.reason is not None and self.step else "",
            "detail": "" if self.detail == "breakdown" else self.detail,
            "sort": "" if self.sort == "-events" else self.sort,
            **self.filters,
        }
        return [(key, values[key]) for key in keys if values[key]]
