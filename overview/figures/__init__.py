"""Every figure of the Delivery Overview as plain dataclasses, shared by the pages, the API and the
alerts so the three can never disagree: `results` (the shapes), `rollup_query` (which rollup rows,
summed how), `pipeline` (a destination's or source's figures), `home` (the workspace home)."""
