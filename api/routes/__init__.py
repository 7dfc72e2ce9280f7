"""The API's routers, one module per area; each route parses, calls ``api.queries`` or a
building block of ``store``/``attestor``, and converts (``api.convert``)."""

from typing import Final

PREFIX: Final = "/v1"
"""Every route's version prefix, set on each router (not at include time) so that a matched
route's own path is the full template the metrics are labelled with."""
