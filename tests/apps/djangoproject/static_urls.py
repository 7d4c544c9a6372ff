from django.contrib import admin
from django.urls import path

from .urls import urlpatterns as base

urlpatterns = [*base, path("admin/", admin.site.urls)]
