from django.urls import include, path
from oauth2_provider import views as oauth2_views

urlpatterns = [
    # Same path as authz_server's token endpoint (no trailing slash), so the
    # load generator sends byte-identical requests to both servers.
    path("oauth/token", oauth2_views.TokenView.as_view(), name="bench-token"),
    path("oauth/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
