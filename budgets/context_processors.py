def alerts(request):
    """The number of firing alerts of the user's projects, for the navigation badge.

    Given as a callable so that a page renders it with one query, and only when the
    template asks (base.html reads it once with {% with %}).
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from budgets.selectors import firing_alert_count_for_user

    return {"firing_alert_count": lambda: firing_alert_count_for_user(user=user)}
