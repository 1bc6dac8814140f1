"""Pagination that never counts more than it shows.

A page needs the number of rows only to draw its links and say "1,234 results"; past a few
thousand nobody pages to the end, and counting a million matches costs more than the page
itself. `CappedPaginator` counts up to `cap` rows (`SELECT count(*) FROM (… LIMIT cap + 1)`)
and says whether there are more (`capped`), so a page shows "10,000+".
"""

from __future__ import annotations

from functools import cached_property

from django.core.paginator import Paginator
from rest_framework.pagination import PageNumberPagination

COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    cap = COUNT_CAP

    @cached_property
    def _seen(self) -> int:
        object_list = self.object_list
        if hasattr(object_list, "count") and hasattr(object_list, "query"):
            return object_list[: self.cap + 1].count()
        return len(object_list[: self.cap + 1])

    @cached_property
    def count(self) -> int:
        return min(self._seen, self.cap)

    @property
    def capped(self) -> bool:
        """More rows exist than `count` says."""
        return self._seen > self.cap


class CappedPagination(PageNumberPagination):
    """The API's pagination (page, page_size ≤ 500) with a capped count: `count` is at most
    `COUNT_CAP`, and `count_capped` says when there are more."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    django_paginator_class = CappedPaginator

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["count_capped"] = self.page.paginator.capped
        return response

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        schema["properties"]["count_capped"] = {"type": "boolean"}
        return schema
