"""The operator's dashboard: a Starlette app of its own, beside the receiver (see `app`)."""

from webhook_receiver.dashboard.app import DashboardSources, create_app

__all__ = ["DashboardSources", "create_app"]
