"""The platform wing: what a content platform runs where uploads arrive (issue 17).

``check``: the compliance linter behind ``labeler check`` (marks, rule findings, SARIF). The bytes
core never imports this package."""
