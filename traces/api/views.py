from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics

from traces.api.serializers import TraceDetailSerializer, TraceSerializer
from traces.models import Trace
from traces.selectors import TraceFilters, project_list_for_user, span_rows_for_trace, trace_list

FILTER_PARAMS = [
    OpenApiParameter("project", str, description="Project slug"),
    OpenApiParameter("agent", str),
    OpenApiParameter("status", str, enum=["ok", "error", "incomplete"]),
    OpenApiParameter("session", str, description="Session id"),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Started at or after"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Started before"),
    OpenApiParameter("min_cost", OpenApiTypes.DECIMAL, description="Minimum cost in USD"),
    OpenApiParameter("q", str, description="Trace id prefix or words of the name"),
    OpenApiParameter(
        "order", str, enum=["newest", "cost", "duration", "tokens"], description="Sort order"
    ),
]


@extend_schema(parameters=FILTER_PARAMS)
class TraceListView(generics.ListAPIView):
    """Traces of the projects you can see, newest first."""

    serializer_class = TraceSerializer

    def get_queryset(self):
        filters = TraceFilters.from_params(self.request.query_params)
        if filters.errors:
            raise exceptions.ValidationError({"filters": filters.errors})
        return trace_list(user=self.request.user, filters=filters)


class TraceDetailView(generics.RetrieveAPIView):
    """One trace with all its spans, in start order."""

    serializer_class = TraceDetailSerializer
    lookup_field = "trace_id"

    @extend_schema(parameters=[OpenApiParameter("project", str, description="Project slug")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_object(self):
        qs = Trace.objects.filter(
            project__in=project_list_for_user(user=self.request.user),
            trace_id=self.kwargs["trace_id"].lower(),
        ).select_related("project")
        project = self.request.query_params.get("project")
        if project:
            qs = qs.filter(project__slug=project)
        traces = list(qs[:2])
        if not traces:
            raise exceptions.NotFound("No such trace.")
        if len(traces) > 1:
            raise exceptions.ValidationError(
                {"project": "This trace id exists in several projects; pass ?project=<slug>."}
            )
        trace = traces[0]
        trace.span_list = span_rows_for_trace(trace=trace)
        return trace
