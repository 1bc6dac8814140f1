"""The review queue pages: the queue of a project (/review/) and one item (/review/<id>/).

Members see the queue; the project's admins (and staff) claim, release and decide. Every
action is a POST with CSRF whose logic is `controls.review`'s; an action that lost a race
(another reviewer claimed first, the item was decided meanwhile) is a 409 that says so.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from controls.models import ReviewItem
from controls.review import (
    ReviewConflict,
    review_item_claim,
    review_item_release,
    review_item_resolve,
    review_time_to_decision,
    review_waiting,
    sla_text,
)
from traces import display
from traces.models import Membership
from traces.selectors import project_from_query, project_list_for_user, project_role_for_user

PAGE_SIZE = 25
FILTERS = {"open": "Open", "mine": "Claimed by me", "resolved": "Resolved"}
RESOLUTIONS = {r.value: r.label for r in ReviewItem.Resolution}
DECISION_WINDOW_DAYS = 30
MAX_NOTE = 5000


# The time to decision aggregates a month of decisions: read at most once a minute per
# project and process (a resolution shows up in it within that minute).
TIME_TO_DECISION_CACHE_SECONDS = 60


def _time_to_decision(project_id: int, now) -> list[dict]:
    key = f"review:time-to-decision:{project_id}"
    rows = cache.get(key)
    if rows is None:
        rows = review_time_to_decision(
            project_id=project_id, since=now - timedelta(days=DECISION_WINDOW_DAYS), until=now
        )
        cache.set(key, rows, TIME_TO_DECISION_CACHE_SECONDS)
    return rows


def _can_review(user, project) -> bool:
    return project_role_for_user(user=user, project=project) == Membership.Role.ADMIN


def _queue_url(project, state: str = "open") -> str:
    return f"{reverse('review-queue')}?{urlencode({'project': project.slug, 'state': state})}"


def _row(item: ReviewItem, *, now, user) -> dict:
    waiting = review_waiting(item, now=now)
    return {
        "item": item,
        "waited": display.duration(waiting["waited"].total_seconds() * 1000),
        "sla": sla_text(waiting["sla"]) if waiting["sla"] is not None else "",
        "late": waiting["late"],
        "mine": item.claimed_by_id == user.pk,
        "trace_url": reverse(
            "trace-timeline", kwargs={"slug": item.project.slug, "trace_id": item.trace_id}
        )
        if item.trace_id
        else "",
    }


def review_queue_page(request):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    state = request.GET.get("state", "open")
    if state not in FILTERS:
        state = "open"
    context = {
        "projects": projects,
        "nav_projects": projects,
        "project": project,
        "state": state,
        "filters": list(FILTERS.items()),
    }
    if project is None:
        return render(request, "controls/review_queue.html", context)
    now = timezone.now()
    items = ReviewItem.objects.filter(project=project).select_related(
        "project", "claimed_by", "approval"
    )
    if state == "resolved":
        items = items.exclude(status=ReviewItem.Status.OPEN).order_by("-resolved_at", "-id")
    else:
        items = items.filter(status=ReviewItem.Status.OPEN).order_by("created_at", "id")
        if state == "mine":
            items = items.filter(claimed_by=request.user)
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(
        {
            "page": page,
            "rows": [_row(i, now=now, user=request.user) for i in page.object_list],
            "can_review": _can_review(request.user, project),
            "resolutions": RESOLUTIONS,
            "open_count": ReviewItem.objects.filter(
                project=project, status=ReviewItem.Status.OPEN
            ).count(),
            "decision_days": DECISION_WINDOW_DAYS,
            "time_to_decision": [
                {
                    **row,
                    "median": display.duration(row["median_s"] * 1000),
                    "p95": display.duration(row["p95_s"] * 1000),
                }
                for row in _time_to_decision(project.pk, now)
            ],
        }
    )
    return render(request, "controls/review_queue.html", context)


def _item_for_user(request, item_id: int) -> ReviewItem:
    try:
        return ReviewItem.objects.select_related("project", "claimed_by", "approval").get(
            pk=item_id, project__in=project_list_for_user(user=request.user)
        )
    except ReviewItem.DoesNotExist:
        raise Http404("No such review item") from None


def review_item_page(request, item_id: int):
    """One item (GET); claim, release, approve, deny or override it (POST)."""
    item = _item_for_user(request, item_id)
    project = item.project
    can_review = _can_review(request.user, project)
    status = 200
    error = ""
    if request.method == "POST":
        if not can_review:
            raise PermissionDenied("Only the project's admins review.")
        action = request.POST.get("action", "")
        note = request.POST.get("note", "")
        back = request.POST.get("back") == "queue"
        if len(note) > MAX_NOTE:
            return HttpResponseBadRequest(f"A note has at most {MAX_NOTE} characters.")
        if action == "claim":
            if review_item_claim(item_id=item.pk, user=request.user):
                messages.success(request, "Claimed: it is yours to decide.")
                return redirect(_queue_url(project) if back else request.path)
            error, status = "Someone else claimed it first, or it is already decided.", 409
        elif action == "release":
            if review_item_release(item_id=item.pk, user=request.user):
                messages.success(request, "Released: back in the queue.")
                return redirect(_queue_url(project) if back else request.path)
            error, status = "You do not hold this item.", 409
        elif action in RESOLUTIONS:
            if action == ReviewItem.Resolution.OVERRIDDEN and not note.strip():
                error, status = "Say in the note what you did instead.", 400
            else:
                try:
                    review_item_resolve(item=item, user=request.user, resolution=action, note=note)
                except ValueError as exc:
                    error, status = str(exc), 400
                except ReviewConflict as exc:
                    error, status = str(exc), 409
                else:
                    messages.success(request, f"{RESOLUTIONS[action]}.")
                    return redirect(_queue_url(project) if back else request.path)
        else:
            return HttpResponseBadRequest("Unknown action.")
        item = _item_for_user(request, item_id)
    now = timezone.now()
    context = {
        "project": project,
        "nav_projects": project_list_for_user(user=request.user),
        "row": _row(item, now=now, user=request.user),
        "item": item,
        "can_review": can_review,
        "error": error,
        "resolutions": RESOLUTIONS,
        "queue_url": _queue_url(project),
        "note": request.POST.get("note", "") if error else "",
        "arguments_json": json.dumps(item.approval.arguments, indent=2, ensure_ascii=False)
        if item.approval
        else "",
    }
    return render(request, "controls/review_item.html", context, status=status)
