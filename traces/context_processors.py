def console(request):
    """Projects the user can see, for the navigation bar; for staff, how many ingest
    batches the rollup has quarantined."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from traces.rollups import quarantined_batch_count
    from traces.selectors import project_list_for_user

    context = {"nav_projects": project_list_for_user(user=user)}
    if user.is_staff:
        # A callable: counted only where the navigation is drawn.
        context["quarantined_batches"] = quarantined_batch_count
    return context
