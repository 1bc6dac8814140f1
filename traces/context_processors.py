def console(request):
    """Projects the user can see, for the navigation bar."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from traces.selectors import project_list_for_user

    return {"nav_projects": project_list_for_user(user=user)}
